//! RFC 5424 messages for audit events. The structured data carries what a SIEM filters on, and
//! the sequence number, so a receiver can put events in order and drop a repeat; the message
//! is the event as JSON, as the export writes it.

use crate::audit::AuditEvent;
use crate::audit::query;

/// The SD-ID's private enterprise number: 32473 is IANA's number reserved for documentation
/// and examples (RFC 5612), as Ayush has none of its own.
pub const SD_ID: &str = "ayush@32473";
/// Facility 13, "log audit".
const FACILITY: u8 = 13;
/// What UDP receivers accept without fragmenting trouble; a longer event's details are left out.
pub const UDP_MAX: usize = 8192;

/// The machine's name for the HOSTNAME field, or `-`.
pub fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name.trim().chars().filter(|c| c.is_ascii_graphic()).take(255).collect();
    if name.is_empty() { "-".into() } else { name }
}

fn severity(outcome: &str) -> u8 {
    match outcome {
        "success" => 5, // notice
        _ => 4,         // warning: failures and refusals
    }
}

/// PARAM-VALUE escaping (RFC 5424 6.3.3): `"`, `\` and `]` take a backslash.
fn param(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("=\"");
    for ch in value.chars() {
        if matches!(ch, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('"');
}

/// MSGID: printable ASCII, at most 32 characters.
fn msgid(action: &str) -> String {
    let id: String = action.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
    if id.is_empty() { "-".into() } else { id }
}

/// One event as an RFC 5424 message (without transport framing).
pub fn message(e: &AuditEvent, hostname: &str, procid: u32) -> String {
    message_with(e, hostname, procid, &query::to_json(e).to_string())
}

fn message_with(e: &AuditEvent, hostname: &str, procid: u32, msg: &str) -> String {
    let pri = FACILITY * 8 + severity(&e.outcome);
    let mut out =
        format!("<{pri}>1 {} {hostname} ayush {procid} {} [{SD_ID}", query::rfc3339(e.at), msgid(&e.action));
    param(&mut out, "seq", &e.seq.to_string());
    param(&mut out, "actor", &e.actor_name);
    param(&mut out, "outcome", &e.outcome);
    if let (Some(t), Some(id)) = (&e.target_type, &e.target_id) {
        param(&mut out, "target", &format!("{t}:{id}"));
    }
    if let Some(ip) = &e.ip {
        param(&mut out, "ip", ip);
    }
    param(&mut out, "hash", e.hash.as_deref().unwrap_or_default());
    out.push_str("] ");
    out.push_str(msg);
    out
}

/// The same, short enough for one UDP datagram: when it would not fit, the details are
/// replaced by a note of their size (the full event stays in the log and the TCP sinks).
pub fn datagram(e: &AuditEvent, hostname: &str, procid: u32) -> String {
    let full = message(e, hostname, procid);
    if full.len() <= UDP_MAX {
        return full;
    }
    let mut json = query::to_json(e);
    json["details"] = serde_json::json!({"truncated": true, "bytes": e.details.len()});
    json["user_agent"] = serde_json::Value::Null;
    message_with(e, hostname, procid, &json.to_string())
}

/// Octet-counting framing (RFC 6587 3.4.1), as RFC 5425 requires over TLS.
pub fn frame(out: &mut Vec<u8>, message: &str) {
    out.extend_from_slice(message.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(message.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(details: &str) -> AuditEvent {
        AuditEvent {
            id: 1,
            seq: 42,
            at: 1_795_651_200,
            actor_id: Some(3),
            actor_name: "ali\"ce]".into(),
            auth_method: Some("session".into()),
            api_key_id: None,
            ip: Some("10.0.0.7".into()),
            user_agent: None,
            action: "auth.login".into(),
            target_type: Some("user".into()),
            target_id: Some("alice".into()),
            outcome: "failure".into(),
            details: details.into(),
            prev_hash: Some("0".repeat(64)),
            hash: Some("ab".repeat(32)),
        }
    }

    #[test]
    fn messages_follow_rfc_5424() {
        let m = message(&event("{\"reason\":\"bad_password\"}"), "host1", 77);
        assert!(
            m.starts_with("<108>1 2026-11-26T00:00:00Z host1 ayush 77 auth.login [ayush@32473 seq=\"42\""),
            "{m}"
        );
        assert!(m.contains(r#"actor="ali\"ce\]""#), "{m}");
        assert!(m.contains("target=\"user:alice\" ip=\"10.0.0.7\""), "{m}");
        let json: serde_json::Value = serde_json::from_str(m.split_once("] ").unwrap().1).unwrap();
        assert_eq!(json["details"]["reason"], "bad_password");
        let mut framed = Vec::new();
        frame(&mut framed, "abc");
        assert_eq!(framed, b"3 abc");
    }

    #[test]
    fn datagrams_fit() {
        let big = format!("{{\"text\":\"{}\"}}", "x".repeat(20_000));
        let d = datagram(&event(&big), "host1", 77);
        assert!(d.len() <= UDP_MAX, "{}", d.len());
        assert!(d.contains("\"truncated\":true") && d.contains("seq=\"42\""));
    }
}
