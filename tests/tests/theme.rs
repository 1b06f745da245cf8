//! White-label theming through the real binary: `ayushctl theme` and `/api/admin/theme` set
//! it, a running server takes it up without a restart, bad images and unreadable colours are
//! refused with nothing changed, the notice is accepted once per text and audited, and a theme
//! moves between installations by export and import.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use serde_json::json;
use std::time::{Duration, Instant};

const PW: &str = "theme password 1";
const LOGO: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#0b7285"/></svg>"##;

/// Waits (at most 10 seconds) until `path` answers with `want` in its body.
fn eventually(server: &Server, path: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = server.client().get(path).body;
        if body.contains(want) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The form token in a page.
fn csrf_of(page: &str) -> String {
    let at = page.find(r#"name="csrf" value=""#).expect("a form token") + r#"name="csrf" value=""#.len();
    page[at..].split('"').next().unwrap().to_string()
}

#[test]
fn admins_theme_the_installation_and_people_accept_its_notice() {
    let server = Server::start();
    server.create_user("root", "admin", PW);
    server.create_user("bo", "user", PW);
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, body: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        path.to_str().unwrap().to_string()
    };
    let logo = file("acme.svg", LOGO);
    let css = file("acme.css", ".brand span { letter-spacing: .05em; }\n");
    let ctl = |args: &[&str]| server.ctl_local(args, None);

    // Set from the command line on the data directory, while the server runs: it takes it up
    // without a restart.
    let out = ctl(&[
        "-o",
        "json",
        "theme",
        "set",
        "--product-name",
        "Acme Assist",
        "--primary-color",
        "#0b7285",
        "--logo",
        &logo,
        "--css",
        &css,
        "--banner",
        "Authorised Acme business only.\nUse is monitored.",
        "--footer-link",
        "Help=https://intranet.acme.example/help",
        "--footer-link",
        "Privacy=/privacy",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let shown = out.json();
    assert_eq!(shown["effective"]["product_name"], "Acme Assist", "{shown}");
    assert_eq!(shown["effective"]["logo"], "set");
    assert_eq!(
        shown["set"],
        json!(["product_name", "primary_color", "logo", "banner", "footer_links", "css"])
    );
    assert!(eventually(&server, "/theme.css", "#0b7285").contains("--brand: #0b7285"));
    let login = eventually(&server, "/login", "Acme Assist");
    assert!(login.contains("<title>Sign in · Acme Assist</title>"), "{login}");
    assert!(login.contains("Authorised Acme business only."), "the notice is on the sign-in page");
    assert!(login.contains(r#"href="https://intranet.acme.example/help">Help</a>"#), "footer links");
    assert!(login.contains("/theme/custom.css?r="), "the custom stylesheet is linked");
    let mut anyone = server.client();
    let logo_reply = anyone.get("/theme/logo");
    assert_eq!((logo_reply.status, logo_reply.body.as_str()), (200, LOGO));
    assert_eq!(logo_reply.header("content-type"), Some("image/svg+xml"));
    assert!(logo_reply.header("content-security-policy").unwrap().contains("sandbox"));
    assert!(anyone.get("/theme/custom.css").body.contains("letter-spacing"));
    assert_eq!(anyone.get("/theme/favicon").body, LOGO, "without a favicon the logo serves");

    // Refused: a scripted SVG, an unreadable colour, a link that runs script. Nothing changes.
    let evil = file("evil.svg", r#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#);
    let before = ctl(&["-o", "json", "theme", "show"]).json()["revision"].clone();
    for (args, why) in [
        (vec!["theme", "set", "--logo", evil.as_str()], "event handler"),
        (vec!["theme", "set", "--primary-color", "#ffe066"], "contrast"),
        (vec!["theme", "set", "--footer-link", "x=javascript:alert(1)"], "must start with"),
        (vec!["theme", "set", "--product-name", "Ok", "--reset", "product-name"], "both set and reset"),
        (vec!["theme", "set", "--reset", "colour"], "no such setting"),
    ] {
        let out = ctl(&args);
        assert!(!out.ok && out.stderr.contains(why), "{args:?}: {}", out.stderr);
    }
    assert_eq!(ctl(&["-o", "json", "theme", "show"]).json()["revision"], before, "nothing was stored");

    // A person who signs in accepts the notice before any page, once.
    let mut bo = server.client();
    assert_eq!(bo.login("bo", PW).status, 200);
    let r = bo.get("/chat");
    assert_eq!((r.status, r.header("location")), (303, Some("/notice?next=%2Fchat")));
    let r = bo.get("/api/conversations");
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("acknowledge the notice"), "{}", r.body);
    let notice = bo.get("/notice?next=%2Fchat");
    assert_eq!(notice.status, 200);
    assert!(notice.body.contains("Use is monitored."), "{}", notice.body);
    let form = format!("csrf={}&revision=1&next=%2Fchat", csrf_of(&notice.body));
    let r = bo.raw("POST", "/notice", &[("Content-Type", "application/x-www-form-urlencoded")], &form);
    assert_eq!((r.status, r.header("location")), (303, Some("/chat")), "{}", r.body);
    assert_eq!(bo.get("/chat").status, 200);
    assert_eq!(bo.get("/api/conversations").status, 200);
    let acks = server.audit_events("notice.acknowledged", None);
    assert_eq!(acks.len(), 1);
    let details: serde_json::Value = serde_json::from_str(&acks[0].details).unwrap();
    assert_eq!((acks[0].actor_name.as_str(), details["banner_revision"].as_i64()), ("bo", Some(1)));
    let sets = server.audit_events("theme.set", None);
    let details: serde_json::Value = serde_json::from_str(&sets[0].details).unwrap();
    assert_eq!(details["values"]["product_name"], "Acme Assist", "{details}");

    // Over the API (an admin's key, as `ayushctl` remote sends it): a new text is accepted again.
    let key = server.token_for("root");
    let out = server.ctl_remote(&key, &["theme", "set", "--banner", "New rules from Monday."], None);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(bo.get("/chat").status, 303, "the new notice holds the pages again");
    // The accent colour and mode straight through PUT /api/admin/theme.
    let auth = format!("Bearer {key}");
    let put = |body: serde_json::Value| {
        server.client().raw(
            "PUT",
            "/api/admin/theme",
            &[("Authorization", auth.as_str()), ("Content-Type", "application/json")],
            &body.to_string(),
        )
    };
    let r = put(json!({"accent_color": "#e8590c", "mode": "dark"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["effective"]["mode"], "dark");
    assert!(server.client().get("/login").body.contains(r#"data-mode="dark""#));
    let r = put(json!({"colour": "#fff"}));
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.body);
    let r = put(json!({"logo": {"content_type": "image/gif", "base64": "R0lGODlh"}}));
    assert_eq!(r.status, 422, "{}", r.body);

    // Export here, import into another installation: the same theme there.
    let exported = dir.path().join("theme.json");
    let out = ctl(&["theme", "export", exported.to_str().unwrap()]);
    assert!(out.ok, "{}", out.stderr);
    let other = Server::start();
    let out = other.ctl_local(&["-o", "json", "theme", "import", exported.to_str().unwrap()], None);
    assert!(out.ok, "{}", out.stderr);
    let (mut here, mut there) = (
        ctl(&["-o", "json", "theme", "show"]).json(),
        other.ctl_local(&["-o", "json", "theme", "show"], None).json(),
    );
    // Each installation numbers its own notices: the other one has seen one text.
    assert_eq!(
        (here["effective"]["banner"]["revision"].take(), there["effective"]["banner"]["revision"].take()),
        (json!(2), json!(1))
    );
    assert_eq!(here["effective"], there["effective"]);
    assert_eq!(eventually(&other, "/theme/logo", "0b7285"), LOGO);
    // Not an export: refused before anything changes.
    let junk = file("junk.json", r#"{"settings": {}}"#);
    let out = other.ctl_local(&["theme", "import", &junk], None);
    assert!(!out.ok && out.stderr.contains("ayush_theme"), "{}", out.stderr);
    // Back to the config file's values.
    let out = other.ctl_local(
        &["-o", "json", "theme", "set", "--reset", "product-name", "--reset", "logo", "--banner", ""],
        None,
    );
    assert!(out.ok, "{}", out.stderr);
    let shown = out.json();
    assert_eq!(
        (shown["effective"]["product_name"].as_str(), shown["effective"]["logo"].as_str()),
        (Some("Ayush"), Some("built-in"))
    );
    assert_eq!(shown["effective"]["banner"], serde_json::Value::Null);
}
