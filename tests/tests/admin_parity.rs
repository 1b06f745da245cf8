//! `ayushctl` means the same whether it reaches Ayush over the API or opens the data directory
//! (`--local`): one script of admin commands (accounts, groups, collections and their
//! documents, models, assistants, API keys, providers, SSO mappings, audit holds, the theme) runs in each mode on its
//! own fresh installation,
//! and what each command prints, how it fails, and the audit events the script leaves must
//! match, ids, times and who did it aside.

#![allow(clippy::expect_used)] // helpers here fail the test by panicking

use ayush_tests::{CtlOutput, GEMMA_FILE, Server, test_model};
use serde_json::{Map, Value};

/// One installation and the way this run reaches it.
struct Mode {
    server: Server,
    /// An admin's API key.
    token: String,
    /// An auditor's: the audit log's commands are theirs, not an admin's.
    auditor_token: String,
    remote: bool,
}

impl Mode {
    fn start(remote: bool) -> Mode {
        let server = Server::start();
        // Both installations are bootstrapped alike, so their audit logs line up.
        server.create_user("root", "admin", "correct horse battery");
        server.create_user("ada", "auditor", "correct horse battery");
        let token = server.token_for("root");
        let auditor_token = server.key_signed_in("ada", "correct horse battery");
        Mode { token, auditor_token, server, remote }
    }

    fn ctl(&self, args: &[&str], stdin: Option<&str>) -> CtlOutput {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        match self.remote {
            true if args.first() == Some(&"audit") => {
                self.server.ctl_remote(&self.auditor_token, &full, stdin)
            }
            true => self.server.ctl_remote(&self.token, &full, stdin),
            false => self.server.ctl_local(&full, stdin),
        }
    }

    /// The events the script left: everything after the bootstrap's.
    fn events_after(&self, seq: i64) -> Vec<Value> {
        let store = self.server.open_store();
        let filter = ayush_server::audit::query::Filter::default();
        let events = store
            .run_blocking(|c| ayush_server::audit::query::page_after(c, &filter.check()?, seq, 500))
            .expect("audit events");
        events
            .into_iter()
            .map(|e| {
                let details: Value = serde_json::from_str(&e.details).expect("details are JSON");
                serde_json::json!({
                    "action": e.action,
                    "target": [e.target_type, e.target_id],
                    "outcome": e.outcome,
                    "details": normalized(details),
                })
            })
            .collect()
    }

    fn last_seq(&self) -> i64 {
        let store = self.server.open_store();
        let filter = ayush_server::audit::query::Filter::default();
        store
            .run_blocking(|c| ayush_server::audit::query::page(c, &filter.check()?, None, 1))
            .expect("audit events")
            .first()
            .map_or(0, |e| e.seq)
    }
}

/// Values that differ between two installations by nature: ids and times, the account that
/// acted, where a model file came from (a path here, an upload there), secrets, how long a
/// verification took, and how far the head file outside the database has got (a server
/// writes it on its housekeeping tick, `--local` as it exits).
fn volatile(key: &str) -> bool {
    key == "id"
        || key.ends_with("_id")
        || key.ends_with("_at")
        || matches!(
            key,
            "imported_by"
                | "created_by"
                | "placed_by"
                | "source"
                | "prefix"
                | "secret"
                | "millis"
                | "head_file"
                // Signed by the server's periodic housekeeping (the first as soon as it holds
                // the duties and the log has events), not by the command: on a slow start the
                // first checkpoint may land after the bootstrap in one run and before it in the
                // other.
                | "checkpoints"
        )
}

fn normalized(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (volatile(&k), &v) {
                        (true, Value::Null) => Value::Null,
                        (true, Value::Number(_)) => Value::String("<number>".into()),
                        (true, Value::String(_)) => Value::String("<text>".into()),
                        _ => normalized(v),
                    };
                    (k, v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalized).collect()),
        other => other,
    }
}

/// What a command's run says, comparable across modes: its output's shape and values, or its
/// error message (a remote error also names its code, in parentheses, which is dropped).
fn outcome(out: &CtlOutput) -> Value {
    if !out.ok {
        let message = out.stderr.trim().trim_start_matches("error: ");
        // The code is one word, as in "(not_found)" or "(auth.weak_password)"; a message may end
        // in other parentheses.
        let message = match message.rsplit_once(" (") {
            Some((text, code))
                if code
                    .strip_suffix(')')
                    .is_some_and(|c| c.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')) =>
            {
                text
            }
            _ => message,
        };
        return serde_json::json!({"failed": message});
    }
    match out.stdout.trim() {
        "" => Value::Null,
        text => normalized(serde_json::from_str(text).unwrap_or(Value::String(text.into()))),
    }
}

/// A provider on loopback, which the air-gapped egress policy allows; nothing listens there.
const LOOPBACK: &str = "http://127.0.0.1:9/v1";

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn local_and_remote_ayushctl_agree_on_every_admin_capability() {
    let model = test_model(GEMMA_FILE);
    let model = model.to_string_lossy().to_string();
    let folder = tempfile::tempdir().expect("temp dir");
    std::fs::write(folder.path().join("leave.md"), "# Leave\n\nTwenty-six weeks of parental leave.\n")
        .expect("write");
    std::fs::write(folder.path().join("parking.txt"), "Parking\n\nThe car park closes at midnight.\n")
        .expect("write");
    let docs = folder.path().to_string_lossy().to_string();
    let remote = Mode::start(true);
    let local = Mode::start(false);
    let (remote_from, local_from) = (remote.last_seq(), local.last_seq());

    let pw = Some("a long enough password");
    // (command, standard input, whether it must succeed)
    let script: Vec<(Vec<&str>, Option<&str>, bool)> = vec![
        (
            vec!["user", "create", "alice", "--role", "user", "--display-name", "Alice", "--password-stdin"],
            pw,
            true,
        ),
        (vec!["user", "create", "build-bot", "--role", "user", "--service"], None, true),
        (
            vec!["user", "create", "nopw", "--role", "user", "--no-password", "--email", "np@example.com"],
            None,
            true,
        ),
        (vec!["user", "create", "alice", "--role", "user", "--password-stdin"], pw, false),
        (vec!["user", "create", "bob", "--role", "user", "--password-stdin"], Some("short"), false),
        (vec!["user", "create", "no spaces", "--role", "user", "--no-password"], None, false),
        (vec!["user", "show", "nobody"], None, false),
        (vec!["user", "set-role", "alice", "auditor"], None, true),
        (vec!["user", "disable", "alice"], None, true),
        (vec!["user", "enable", "alice"], None, true),
        (vec!["user", "reset-password", "alice", "--password-stdin"], Some("another long password"), true),
        (vec!["user", "reset-password", "alice", "--password-stdin"], Some("alice"), false),
        (vec!["group", "create", "eng", "--description", "Engineering"], None, true),
        (vec!["group", "create", "eng"], None, false),
        (vec!["group", "add-member", "eng", "alice"], None, true),
        (vec!["group", "add-member", "eng", "nobody"], None, false),
        (vec!["group", "show", "eng"], None, true),
        (vec!["group", "list"], None, true),
        (vec!["user", "show", "alice"], None, true),
        (vec!["collections", "create", "handbook", "--group", "eng"], None, true),
        (vec!["collections", "ingest", "handbook", &docs], None, true),
        (vec!["collections", "ingest", "handbook", &docs], None, true),
        (vec!["collections", "ingest", "nothere", &docs], None, false),
        (vec!["collections", "documents", "handbook"], None, true),
        (vec!["collections", "list"], None, true),
        (vec!["group", "create", "ops"], None, true),
        (vec!["collections", "grant", "handbook", "ops"], None, true),
        (vec!["collections", "grant", "handbook", "nogroup"], None, false),
        (vec!["collections", "revoke", "handbook", "eng"], None, true),
        (vec!["collections", "create", "handbook"], None, false),
        (vec!["collections", "create", "bad/name"], None, false),
        (vec!["collections", "documents", "nothere"], None, false),
        (vec!["collections", "create", "scratch", "--group", "ops"], None, true),
        (vec!["collections", "remove", "scratch"], None, true),
        (vec!["collections", "remove", "scratch"], None, false),
        (vec!["collections", "list"], None, true),
        (vec!["models", "import", &model, "--name", "tiny"], None, true),
        (vec!["models", "import", &model, "--name", "tiny"], None, false),
        (vec!["models", "allow", "tiny", "--group", "eng"], None, true),
        (
            vec![
                "providers",
                "price",
                "local",
                "tiny",
                "--input-per-mtok",
                "0.1",
                "--output-per-mtok",
                "0.2",
            ],
            None,
            true,
        ),
        (
            vec!["providers", "price", "local", "nothere", "--input-per-mtok", "1", "--output-per-mtok", "1"],
            None,
            false,
        ),
        (
            vec!["providers", "price", "local", "tiny", "--input-per-mtok", "1,5", "--output-per-mtok", "1"],
            None,
            false,
        ),
        (vec!["providers", "prices"], None, true),
        (
            vec![
                "quota",
                "set",
                "--group",
                "eng",
                "--tokens-per-day",
                "100000",
                "--requests-per-minute",
                "60",
            ],
            None,
            true,
        ),
        (
            vec!["quota", "set", "--user", "alice", "--pool", "remote", "--spend-per-month", "25.50"],
            None,
            true,
        ),
        (vec!["quota", "set", "--user", "alice", "--pool", "local", "--concurrent", "2"], None, true),
        (vec!["quota", "set", "--user", "alice"], None, false),
        (vec!["quota", "set", "--group", "nogroup", "--concurrent", "1"], None, false),
        (vec!["quota", "set", "--user", "alice", "--pool", "local", "--spend-per-month", "5"], None, false),
        (vec!["quota", "set", "--user", "alice", "--pool", "gpu", "--concurrent", "1"], None, false),
        (vec!["quota", "list"], None, true),
        (vec!["quota", "remove", "--user", "alice", "--pool", "remote"], None, true),
        (vec!["quota", "remove", "--user", "alice", "--pool", "remote"], None, false),
        (vec!["quota", "list"], None, true),
        (
            vec![
                "theme",
                "set",
                "--product-name",
                "Acme Assist",
                "--primary-color",
                "#0b7285",
                "--mode",
                "light",
                "--footer-link",
                "Help=https://intranet.example/help",
            ],
            None,
            true,
        ),
        (vec!["theme", "set", "--primary-color", "#ffe066"], None, false),
        (vec!["theme", "set", "--mode", "dusk"], None, false),
        (vec!["theme", "set", "--reset", "product-name"], None, true),
        (vec!["theme", "show"], None, true),
        (vec!["models", "allow", "nothere", "--group", "eng"], None, false),
        (vec!["models", "list"], None, true),
        (vec!["assistants", "create", "helper", "--model", "tiny", "--collection", "handbook"], None, true),
        (vec!["assistants", "create", "helper", "--model", "tiny"], None, false),
        (vec!["assistants", "create", "ghost", "--model", "nothere"], None, false),
        (vec!["assistants", "set", "helper", "--description", "Answers from the handbook"], None, true),
        (vec!["assistants", "list"], None, true),
        (vec!["assistants", "remove", "helper"], None, true),
        (vec!["assistants", "remove", "helper"], None, false),
        (vec!["models", "verify", "tiny"], None, true),
        (vec!["models", "set-default", "tiny"], None, true),
        (vec!["models", "disallow", "tiny", "--group", "eng"], None, true),
        (vec!["models", "remove", "tiny"], None, true),
        (vec!["models", "list"], None, true),
        (vec!["keys", "create", "--user", "build-bot", "--name", "ci", "--expires-days", "30"], None, true),
        (vec!["keys", "create", "--user", "build-bot", "--name", "ci", "--expires-days", "0"], None, false),
        (vec!["keys", "create", "--user", "nobody", "--name", "ci"], None, false),
        (vec!["keys", "list", "--user", "build-bot"], None, true),
        (vec!["keys", "revoke", "3"], None, true),
        (vec!["keys", "revoke", "99"], None, false),
        (vec!["keys", "list", "--user", "build-bot"], None, true),
        (
            vec![
                "providers",
                "add",
                "local-llm",
                "--kind",
                "openai",
                "--base-url",
                LOOPBACK,
                "--model",
                "m1",
            ],
            None,
            true,
        ),
        (vec!["providers", "add", "local-llm", "--kind", "openai", "--base-url", LOOPBACK], None, false),
        (vec!["providers", "add", "odd", "--kind", "nosuchkind"], None, false),
        (
            vec!["providers", "add", "far", "--kind", "openai", "--base-url", "https://api.example.com/v1"],
            None,
            false,
        ),
        (
            vec!["providers", "set", "local-llm", "--model", "m1", "--model", "m2", "--timeout-secs", "30"],
            None,
            true,
        ),
        (vec!["providers", "list"], None, true),
        (
            vec![
                "providers",
                "price",
                "local-llm",
                "m2",
                "--input-per-mtok",
                "2.5",
                "--output-per-mtok",
                "10",
            ],
            None,
            true,
        ),
        (
            vec![
                "providers",
                "price",
                "local-llm",
                "m9",
                "--input-per-mtok",
                "2.5",
                "--output-per-mtok",
                "10",
            ],
            None,
            false,
        ),
        (vec!["providers", "prices"], None, true),
        (vec!["providers", "unprice", "local-llm", "m2"], None, true),
        (vec!["providers", "unprice", "local-llm", "m2"], None, false),
        (vec!["providers", "remove", "local-llm"], None, true),
        (vec!["providers", "remove", "local-llm"], None, false),
        (
            vec![
                "sso",
                "map",
                "CN=Engineering,OU=Groups,DC=example,DC=com",
                "--role",
                "user",
                "--group",
                "eng",
            ],
            None,
            true,
        ),
        (vec!["sso", "map", "CN=Nobody", "--role", "emperor"], None, false),
        (vec!["sso", "map", "CN=Nobody", "--group", "nogroup"], None, false),
        (vec!["sso", "mappings"], None, true),
        (vec!["sso", "unmap", "1"], None, true),
        (vec!["sso", "unmap", "1"], None, false),
        (vec!["directory", "sync", "--dry-run"], None, false),
        (vec!["audit", "hold", "alice", "--reason", "litigation 2026-114"], None, true),
        (vec!["audit", "hold", "nobody", "--reason", "typo"], None, false),
        (vec!["audit", "holds"], None, true),
        (vec!["audit", "release", "alice"], None, true),
        (vec!["audit", "release", "alice"], None, false),
        (vec!["audit", "verify"], None, true),
        (vec!["usage", "report", "--by", "group"], None, true),
        (vec!["usage", "report", "--from", "2026-13-01"], None, false),
        (vec!["usage", "report", "--from", "2026-12-02", "--to", "2026-12-01"], None, false),
        (vec!["group", "remove-member", "eng", "alice"], None, true),
        (vec!["group", "delete", "eng"], None, true),
        (vec!["user", "deprovision", "alice"], None, true),
        (vec!["user", "list"], None, true),
    ];
    for (args, stdin, succeeds) in &script {
        let (r, l) = (remote.ctl(args, *stdin), local.ctl(args, *stdin));
        let shown = |o: &CtlOutput| format!("{} {}", o.stdout, o.stderr);
        assert_eq!(l.ok, *succeeds, "`ayushctl --local {}`: {}", args.join(" "), shown(&l));
        assert_eq!(
            outcome(&r),
            outcome(&l),
            "`ayushctl {}` answers differently\nremote: {}\nlocal: {}",
            args.join(" "),
            shown(&r),
            shown(&l)
        );
    }

    // A local ingest goes through the job queue the server uses: its jobs are in the history.
    let mut admin = local.server.client();
    let jobs = admin.raw("GET", "/api/jobs", &[("Authorization", &format!("Bearer {}", local.token))], "");
    let jobs = jobs.json();
    let done: Vec<&Value> = jobs.as_array().expect("jobs").iter().filter(|j| j["status"] == "done").collect();
    assert_eq!(done.len(), 2, "{jobs:#}");
    assert!(
        done.iter().all(|j| j["created_by"].as_str().is_some_and(|b| b.starts_with("local:"))),
        "{jobs:#}"
    );

    let (r, l) = (remote.events_after(remote_from), local.events_after(local_from));
    assert!(r.iter().any(|e| e["action"] == "model.import"), "{r:#?}");
    assert_eq!(r, l, "the two modes leave different audit trails");
}
