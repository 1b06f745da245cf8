use clap::ValueEnum;
use serde_json::Value;

#[derive(Clone, Copy, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// Lists as CSV with a header row (for spreadsheets); anything else as a table.
    Csv,
}

pub const USER_COLUMNS: &[&str] = &["id", "username", "display_name", "role", "disabled", "auth_source"];
pub const GROUP_COLUMNS: &[&str] = &["id", "name", "members", "description"];
pub const MODEL_COLUMNS: &[&str] =
    &["name", "provider", "default", "groups", "arch", "quantization", "context_length", "size", "sha256"];
pub const PROVIDER_COLUMNS: &[&str] =
    &["name", "kind", "base_url", "has_api_key", "models", "speech_models", "image_models", "timeout_secs"];
pub const COLLECTION_COLUMNS: &[&str] =
    &["name", "personal", "owner", "readers", "documents", "chunks", "description"];
pub const DOCUMENT_COLUMNS: &[&str] = &["id", "source", "title", "format", "bytes", "chunks", "sha256"];
pub const PRESET_COLUMNS: &[&str] = &["name", "model", "collections", "description"];
pub const MAPPING_COLUMNS: &[&str] = &["id", "directory_group", "role", "group"];
pub const HOLD_COLUMNS: &[&str] = &["username", "reason", "placed_by", "placed_at"];
pub const USAGE_COLUMNS: &[&str] = &[
    "key",
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "errors",
    "cancelled",
    "refused",
    "cost",
    "mean_ttft_ms",
    "p95_ttft_ms",
    "mean_duration_ms",
    "p95_duration_ms",
];
pub const PRICE_COLUMNS: &[&str] = &["provider", "model", "input_per_mtok", "output_per_mtok", "per_image"];
pub const QUOTA_COLUMNS: &[&str] = &[
    "user",
    "group",
    "pool",
    "tokens_per_day",
    "tokens_per_month",
    "requests_per_minute",
    "concurrent",
    "spend_per_month",
];
pub const TOKEN_COLUMNS: &[&str] = &["id", "user", "name", "prefix", "revoked", "expires_at", "last_used_at"];

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".into(),
        Some(Value::Array(items)) => items.iter().map(|i| cell(Some(i))).collect::<Vec<_>>().join(", "),
        Some(other) => other.to_string(),
    }
}

impl Output {
    pub fn list(self, rows: &Value, columns: &[&str]) -> Result<(), String> {
        if let Output::Json = self {
            return print_json(rows);
        }
        let rows = rows.as_array().cloned().unwrap_or_default();
        if let Output::Csv = self {
            println!("{}", columns.join(","));
            for row in &rows {
                let cells: Vec<String> = columns.iter().map(|c| csv_cell(&cell(row.get(*c)))).collect();
                println!("{}", cells.join(","));
            }
            return Ok(());
        }
        let cells: Vec<Vec<String>> =
            rows.iter().map(|r| columns.iter().map(|c| cell(r.get(*c))).collect()).collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.len()]).max().unwrap_or(0))
            .collect();
        let line = |vals: Vec<String>| {
            let padded: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
            println!("{}", padded.join("  ").trim_end());
        };
        line(columns.iter().map(|c| c.to_uppercase()).collect());
        for row in cells {
            line(row);
        }
        Ok(())
    }

    pub fn object(self, value: &Value) -> Result<(), String> {
        if let Output::Json = self {
            return print_json(value);
        }
        print_fields(value, "");
        Ok(())
    }

    pub fn done(self, message: &str) -> Result<(), String> {
        match self {
            Output::Json => print_json(&serde_json::json!({"ok": true, "message": message})),
            Output::Table | Output::Csv => {
                println!("{message}");
                Ok(())
            }
        }
    }
}

/// A CSV field as the server's exports write it: quoted where it must be, and kept from being
/// read as a formula by a spreadsheet.
fn csv_cell(text: &str) -> String {
    let mut out = String::new();
    ayush_server::audit::query::csv_field(&mut out, text);
    out
}

fn print_fields(value: &Value, indent: &str) {
    let Some(map) = value.as_object() else {
        println!("{indent}{}", cell(Some(value)));
        return;
    };
    for (k, v) in map {
        match v {
            Value::Object(_) => {
                println!("{indent}{k}:");
                print_fields(v, &format!("{indent}  "));
            }
            Value::Array(items) if items.iter().any(Value::is_object) => {
                println!("{indent}{k}:");
                for item in items {
                    let name = item.get("username").or_else(|| item.get("name"));
                    println!("{indent}  - {}", cell(name.or(Some(item))));
                }
            }
            _ => println!("{indent}{k}: {}", cell(Some(v))),
        }
    }
}

fn print_json(v: &Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// One audit event per line: `seq time actor action target outcome details`.
pub fn audit_line(out: Output, event: &Value) {
    use std::io::Write;
    let line = match out {
        Output::Json => event.to_string(),
        Output::Table | Output::Csv => {
            let target = match (event["target_type"].as_str(), event["target_id"].as_str()) {
                (Some(t), Some(id)) => format!("{t}:{id}"),
                _ => "-".into(),
            };
            let details = match &event["details"] {
                Value::Object(o) if o.is_empty() => String::new(),
                Value::Null => String::new(),
                d => d.to_string(),
            };
            format!(
                "{:>8}  {}  {}  {}  {}  {}  {}",
                cell(event.get("seq")),
                cell(event.get("time")),
                cell(event.get("actor")),
                cell(event.get("action")),
                target,
                cell(event.get("outcome")),
                details
            )
            .trim_end()
            .to_string()
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}").and_then(|_| stdout.flush());
}

/// A verification report in words.
pub fn verification(report: &Value) -> String {
    let n = |k: &str| report[k].as_i64().map(|v| v.to_string()).unwrap_or_else(|| "-".into());
    match report.get("problem").filter(|p| !p.is_null()) {
        None => format!(
            "intact: {} events (seq {}–{}) verified, {} signed checkpoints, head file at seq {}, in {} ms",
            n("events"),
            n("first_seq"),
            n("last_seq"),
            n("checkpoints"),
            n("head_file"),
            n("millis")
        ),
        Some(p) => format!(
            "NOT INTACT at seq {}: {}: {}",
            p["seq"].as_i64().unwrap_or_default(),
            p["kind"].as_str().unwrap_or("problem"),
            p["message"].as_str().unwrap_or_default()
        ),
    }
}

/// `sso test-ldap` as lines: one per step, then the result.
pub fn diagnosis(report: &Value) -> String {
    let mut out = String::new();
    for step in report["steps"].as_array().into_iter().flatten() {
        let mark = if step["ok"] == true { "ok  " } else { "FAIL" };
        out.push_str(&format!("{mark} {:<13} {}\n", cell(step.get("step")), cell(step.get("detail"))));
    }
    if let Some(result) = report.get("result") {
        match result["role"].as_str() {
            Some(role) => {
                out.push_str(&format!("=> signs in as {role}, groups: {}\n", cell(result.get("groups"))))
            }
            None => out.push_str(
                "=> no access: none of the directory groups is mapped to a role, and default_role is none\n",
            ),
        }
    }
    out
}

/// `directory sync` as lines.
pub fn sync_report(report: &Value) -> String {
    let mut out = String::new();
    let verb = if report["dry_run"] == true { "would" } else { "did" };
    for c in report["changed"].as_array().into_iter().flatten() {
        let user = cell(c.get("username"));
        if c["action"] == "disable" {
            out.push_str(&format!("{verb} disable {user} ({})\n", cell(c.get("reason"))));
            continue;
        }
        let ch = &c["changes"];
        if let Some([from, to]) = ch["role"].as_array().map(Vec::as_slice) {
            out.push_str(&format!(
                "{verb} change {user}'s role from {} to {}\n",
                cell(Some(from)),
                cell(Some(to))
            ));
        }
        for g in ch["joined"].as_array().into_iter().flatten() {
            out.push_str(&format!("{verb} add {user} to {}\n", cell(Some(g))));
        }
        for g in ch["left"].as_array().into_iter().flatten() {
            out.push_str(&format!("{verb} remove {user} from {}\n", cell(Some(g))));
        }
    }
    for s in report["skipped"].as_array().into_iter().flatten() {
        out.push_str(&format!("skipped {}\n", cell(Some(s))));
    }
    out.push_str(&format!(
        "{} directory accounts checked, {} changed\n",
        cell(report.get("checked")),
        report["changed"].as_array().map_or(0, Vec::len)
    ));
    out
}
