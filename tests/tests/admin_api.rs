//! The foundation as an admin and a user meet it, through the real binaries.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{Server, run_ctl};
use serde_json::json;

const ADMIN_PW: &str = "admin password 1";
const USER_PW: &str = "user password 22";

fn server_with_admin() -> Server {
    let server = Server::start();
    server.create_user("root-admin", "admin", ADMIN_PW);
    server
}

#[test]
fn bootstrap_admin_signs_in_and_out() {
    let server = server_with_admin();
    let mut c = server.client();
    assert_eq!(c.get("/api/me").status, 401);
    let r = c.login("root-admin", ADMIN_PW);
    assert_eq!(r.status, 200, "{}", r.body);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP must not set Secure: {cookie}");
    let me = c.get("/api/me").json();
    assert_eq!(me["user"]["username"], "root-admin");
    assert_eq!(me["user"]["role"], "admin");

    let old = c.session.clone();
    let r = c.login("root-admin", ADMIN_PW);
    assert_eq!(r.status, 200);
    assert_ne!(c.session, old, "the session id is rotated at sign-in");
    let mut stale = server.client();
    stale.session = old;
    assert_eq!(stale.get("/api/me").status, 401, "the previous session ended");

    assert_eq!(c.send_json("POST", "/api/auth/logout", &json!({})).status, 204);
    assert_eq!(c.get("/api/me").status, 401);
}

#[test]
fn wrong_passwords_are_refused_and_audited_then_locked_out() {
    let server = Server::start_with(&[("AYUSH_AUTH__LOCKOUT_MAX_FAILURES", "3")]);
    server.create_user("carol", "user", USER_PW);
    let mut c = server.client();
    for _ in 0..3 {
        let r = c.login("carol", "wrong password!");
        assert_eq!(r.status, 401);
        assert_eq!(r.error_code(), "auth.invalid_credentials");
    }
    let r = c.login("nobody-at-all", "whatever it is");
    assert_eq!(r.error_code(), "auth.invalid_credentials", "unknown users look the same");
    let r = c.login("carol", USER_PW);
    assert_eq!(r.status, 429, "locked even with the right password: {}", r.body);
    assert_eq!(r.error_code(), "auth.locked_out");
    assert!(r.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() > 0));

    drop(c);
    let logins = server.audit_events("auth.login", None);
    assert_eq!(logins.iter().filter(|e| e.outcome == "failure").count(), 4);
    assert!(logins.iter().any(|e| e.outcome == "denied" && e.details.contains("locked_out")));
    assert!(logins.iter().any(|e| e.details.contains("unknown_user")));
    assert!(logins.iter().all(|e| e.ip.as_deref() == Some("127.0.0.1")));
}

#[test]
fn admin_manages_users_and_a_disabled_user_is_out_at_once() {
    let server = server_with_admin();
    let mut admin = server.client();
    assert_eq!(admin.login("root-admin", ADMIN_PW).status, 200);

    let r = admin.send_json(
        "POST",
        "/api/admin/users",
        &json!({"username": "dave", "role": "user", "password": USER_PW}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let r = admin.send_json(
        "POST",
        "/api/admin/users",
        &json!({"username": "dave", "role": "user", "password": USER_PW}),
    );
    assert_eq!(r.status, 409);
    let r = admin.send_json(
        "POST",
        "/api/admin/users",
        &json!({"username": "eve", "role": "user", "password": "short"}),
    );
    assert_eq!(r.error_code(), "auth.weak_password");
    let r = admin.send_json("POST", "/api/admin/users", &json!({"username": "bad name!", "role": "user"}));
    assert_eq!(r.status, 422);
    let r = admin.send_json("POST", "/api/admin/users", &json!({"username": "frank", "role": "overlord"}));
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("overlord"));

    let mut dave = server.client();
    assert_eq!(dave.login("dave", USER_PW).status, 200);
    assert_eq!(dave.get("/api/admin/users").status, 403, "users are not admins");

    let r = admin.send_json("PATCH", "/api/admin/users/dave", &json!({"disabled": true}));
    assert_eq!(r.json()["disabled"], true);
    assert_eq!(dave.get("/api/me").status, 401, "a disabled user's session stops at once");
    assert_eq!(dave.login("dave", USER_PW).status, 401);

    admin.send_json("PATCH", "/api/admin/users/dave", &json!({"disabled": false, "role": "auditor"}));
    assert_eq!(dave.login("dave", USER_PW).status, 200);
    assert_eq!(dave.get("/api/me").json()["user"]["role"], "auditor");

    let r =
        admin.send_json("POST", "/api/admin/users/dave/password", &json!({"password": "a brand new secret"}));
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(dave.get("/api/me").status, 401, "a password reset ends the sessions");
    assert_eq!(dave.login("dave", USER_PW).status, 401);
    assert_eq!(dave.login("dave", "a brand new secret").status, 200);

    let r = admin.send_json("PATCH", "/api/admin/users/root-admin", &json!({"role": "user"}));
    assert_eq!(r.status, 409, "the last admin cannot be demoted: {}", r.body);

    let users = admin.get("/api/admin/users").json();
    let names: Vec<&str> =
        users.as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["dave", "root-admin"]);
}

#[test]
fn groups_and_membership() {
    let server = server_with_admin();
    server.create_user("gina", "user", USER_PW);
    let mut admin = server.client();
    admin.login("root-admin", ADMIN_PW);
    let r = admin.send_json(
        "POST",
        "/api/admin/groups",
        &json!({"name": "Legal Team", "description": "lawyers"}),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(admin.send_json("PUT", "/api/admin/groups/Legal%20Team/members/gina", &json!({})).status, 204);
    assert_eq!(
        admin.send_json("PUT", "/api/admin/groups/Legal%20Team/members/nobody", &json!({})).status,
        404
    );
    let g = admin.get("/api/admin/groups/Legal%20Team").json();
    assert_eq!(g["members"][0]["username"], "gina");
    let list = admin.get("/api/admin/groups").json();
    assert_eq!(list[0]["members"], 1);

    let mut gina = server.client();
    gina.login("gina", USER_PW);
    assert_eq!(gina.get("/api/me").json()["groups"], json!(["Legal Team"]));

    assert_eq!(
        admin.send_json("DELETE", "/api/admin/groups/Legal%20Team/members/gina", &json!({})).status,
        204
    );
    assert_eq!(gina.get("/api/me").json()["groups"], json!([]));
    assert_eq!(admin.send_json("DELETE", "/api/admin/groups/Legal%20Team", &json!({})).status, 204);
    assert_eq!(admin.get("/api/admin/groups/Legal%20Team").status, 404);
}

#[test]
fn cross_site_and_non_json_requests_are_refused() {
    let server = server_with_admin();
    let mut c = server.client();
    c.login("root-admin", ADMIN_PW);
    let body = r#"{"name":"x"}"#;
    let r = c.raw("POST", "/api/admin/groups", &[("Content-Type", "text/plain")], body);
    assert_eq!((r.status, r.error_code().as_str()), (415, "request.unsupported_media_type"));
    let r = c.raw(
        "POST",
        "/api/admin/groups",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "name=x",
    );
    assert_eq!(r.status, 415);
    let r = c.raw(
        "POST",
        "/api/admin/groups",
        &[("Content-Type", "application/json"), ("Origin", "http://evil.example")],
        body,
    );
    assert_eq!((r.status, r.error_code().as_str()), (403, "request.cross_site"));
    let r = c.raw(
        "POST",
        "/api/admin/groups",
        &[("Content-Type", "application/json"), ("Sec-Fetch-Site", "cross-site")],
        body,
    );
    assert_eq!(r.status, 403);
    let r = c.raw(
        "POST",
        "/logout",
        &[("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "http://evil.example")],
        "csrf=x",
    );
    assert_eq!(r.status, 403, "forms are guarded too");
    let r = c.raw("POST", "/logout", &[("Content-Type", "application/x-www-form-urlencoded")], "csrf=wrong");
    assert_eq!(r.status, 403, "a form without the session's token is refused");
    // An admin page's form with a wrong or missing token changes nothing, whatever it carries.
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for body in ["csrf=wrong&name=forged", "name=forged"] {
        let r = c.raw("POST", "/admin/groups", &form, body);
        assert_eq!(r.status, 403, "{body}: {}", r.body);
    }
    assert_eq!(c.get("/api/admin/groups/forged").status, 404, "no group was made");
    let r = c.raw("POST", "/api/admin/groups", &[("Content-Type", "application/json")], "{not json");
    assert_eq!((r.status, r.error_code().as_str()), (400, "request.invalid"));
    let r = c.raw(
        "POST",
        "/api/admin/groups",
        &[("Content-Type", "application/json")],
        r#"{"name":"ok","extra":1}"#,
    );
    assert_eq!(r.status, 400, "unknown fields are refused");
    assert_eq!(c.get("/api/admin/groups").json(), json!([]), "nothing was stored");
    assert_eq!(c.get("/api/nope").error_code(), "not_found");
}

#[test]
fn ayushctl_remote_mode_with_an_api_token() {
    let server = server_with_admin();
    let token = server.token_for("root-admin");
    let ctl = |args: &[&str], stdin: Option<&str>| server.ctl_remote(&token, args, stdin);

    let out = ctl(&["user", "create", "hank", "--role", "user", "--password-stdin"], Some(USER_PW));
    assert!(out.ok, "{}", out.stderr);
    assert!(ctl(&["group", "create", "ops"], None).ok);
    assert!(ctl(&["group", "add-member", "ops", "hank"], None).ok);
    let out = ctl(&["-o", "json", "user", "list"], None);
    let names: Vec<String> =
        out.json().as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap().into()).collect();
    assert_eq!(names, ["hank", "root-admin"]);
    let table = ctl(&["user", "list"], None).stdout;
    assert!(table.starts_with("ID") && table.contains("hank"), "{table}");
    assert!(ctl(&["user", "set-role", "hank", "auditor"], None).ok);
    assert!(ctl(&["user", "disable", "hank"], None).ok);
    let shown = ctl(&["-o", "json", "user", "show", "hank"], None).json();
    assert_eq!(shown["user"]["role"], "auditor");
    assert_eq!(shown["user"]["disabled"], true);
    assert_eq!(shown["groups"], json!(["ops"]));
    assert!(ctl(&["user", "enable", "hank"], None).ok);
    assert!(ctl(&["user", "reset-password", "hank", "--password-stdin"], Some("another fine pw")).ok);
    assert_eq!(server.client().login("hank", "another fine pw").status, 200);
    assert!(ctl(&["group", "remove-member", "ops", "hank"], None).ok);

    let missing = ctl(&["user", "show", "nobody"], None);
    assert!(!missing.ok && missing.stderr.contains("no user named"), "{}", missing.stderr);
    let bad = server.ctl_remote("ayush_not-a-token", &["user", "list"], None);
    assert!(!bad.ok && bad.stderr.contains("auth.unauthenticated"), "{}", bad.stderr);
    let no_token = run_ctl(&["user", "list"], None, &[]);
    assert!(!no_token.ok && no_token.stderr.contains("AYUSH_TOKEN"));

    // A revoked token stops working.
    let listed = server.ctl_local(&["-o", "json", "keys", "list"], None).json();
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    assert!(server.ctl_local(&["keys", "revoke", &id], None).ok);
    assert!(!ctl(&["user", "list"], None).ok);
}

#[test]
fn ayushctl_local_mode_refuses_bad_input_clearly() {
    let server = Server::start();
    let weak =
        server.ctl_local(&["user", "create", "ivan", "--role", "admin", "--password-stdin"], Some("short"));
    assert!(!weak.ok && weak.stderr.contains("at least 12"), "{}", weak.stderr);
    let bad_role = server.ctl_local(&["user", "create", "ivan", "--role", "god"], None);
    assert!(!bad_role.ok && bad_role.stderr.contains("god"));
    let no_tty = server.ctl_local(&["user", "create", "ivan", "--role", "admin"], None);
    assert!(!no_tty.ok && no_tty.stderr.contains("--password-stdin"), "{}", no_tty.stderr);
    let list = server.ctl_local(&["-o", "json", "user", "list"], None);
    assert_eq!(list.json(), json!([]), "nothing half-created");
    let completions = server.ctl_local(&["completions", "bash"], None);
    assert!(completions.ok && completions.stdout.contains("ayushctl"));
}

#[test]
fn health_and_metrics() {
    let server = server_with_admin();
    let mut c = server.client();
    assert_eq!(c.get("/livez").status, 200);
    let ready = c.get("/readyz");
    assert_eq!(ready.json()["database"], "sqlite");
    c.login("root-admin", ADMIN_PW);
    c.get("/api/admin/users/root-admin");
    let metrics = c.get("/metrics").body;
    assert!(
        metrics.contains(
            r#"ayush_http_requests_total{method="GET",route="/api/admin/users/{username}",status="200"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics
            .contains("ayush_http_request_duration_seconds_bucket{route=\"/api/auth/login\",le=\"+Inf\"} 1")
    );
    assert!(metrics.contains("ayush_db_pool_max_connections 8"));
}

#[test]
fn pages_carry_the_theme_and_security_headers() {
    let server = Server::start_with(&[
        ("AYUSH_THEME__PRODUCT_NAME", "Acme Assist"),
        ("AYUSH_THEME__PRIMARY_COLOR", "#aa0011"),
    ]);
    let mut c = server.client();
    let login = c.get("/login");
    assert!(login.body.contains("Acme Assist") && !login.body.contains(">Ayush<"), "{}", login.body);
    assert!(login.header("content-security-policy").unwrap().contains("default-src 'self'"));
    assert!(c.get("/theme.css").body.contains("--brand: #aa0011"));
    let missing = c.get("/no/such/page");
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("Acme Assist") && missing.body.contains("no page at this address"));
    let home = c.get("/admin/users");
    assert_eq!(home.status, 303);
    assert_eq!(home.header("location"), Some("/login?next=%2Fadmin%2Fusers"));
}

#[test]
fn config_check_names_unknown_keys_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap();
    let out = std::process::Command::new(ayush_tests::bin_path("ayush"))
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));

    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[database]\nurl = \"postgres://ayush:hunter2@db/ayush\"\n").unwrap();
    let out = std::process::Command::new(ayush_tests::bin_path("ayush"))
        .args(["config", "check", "--config"])
        .arg(&good)
        .env("AYUSH_AUTH__PASSWORD_MIN_LENGTH", "16")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("postgres://ayush:***@db/ayush") && !text.contains("hunter2"), "{text}");
    assert!(text.contains("password_min_length = 16"));
}

#[test]
fn serves_https_with_rustls_and_marks_the_cookie_secure() {
    let dir = tempfile::tempdir().unwrap();
    let cert =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = Server::start_with(&[
        ("AYUSH_TLS__CERT", cert_path.to_str().unwrap()),
        ("AYUSH_TLS__KEY", key_path.to_str().unwrap()),
    ]);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    server.create_user("tina", "user", USER_PW);
    let mut c = server.client();
    let r = c.login("tina", USER_PW);
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").unwrap().contains("Secure"));
    assert_eq!(c.get("/api/me").json()["user"]["username"], "tina");
}

#[test]
fn a_bad_tls_key_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let out = std::process::Command::new(ayush_tests::bin_path("ayush"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config", ayush_tests::NO_CONFIG_FILE, "--data-dir"])
        .arg(dir.path())
        .env("AYUSH_TLS__CERT", &cert)
        .env("AYUSH_TLS__KEY", &cert)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.cert") && err.contains("cert.pem"), "{err}");
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn models_are_imported_verified_and_removed_remotely() {
    let gemma = ayush_tests::test_model(ayush_tests::GEMMA_FILE);
    let server = server_with_admin();
    let token = server.token_for("root-admin");
    let ctl = |args: &[&str]| server.ctl_remote(&token, args, None);
    let models_dir = server.data_dir.path().join("models");

    // The file is uploaded, hashed on the way, checked, and named.
    let out = ctl(&["-o", "json", "models", "import", gemma.to_str().unwrap(), "--name", "g"]);
    assert!(out.ok, "{}", out.stderr);
    let manifest = out.json();
    assert_eq!(manifest["sha256"], "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818");
    assert_eq!(
        (manifest["arch"].as_str(), manifest["imported_by"].as_str()),
        (Some("gemma3"), Some("root-admin"))
    );
    assert!(manifest["source"].as_str().unwrap().contains("gemma-3-270m-q4_k_m.gguf"));
    let again = ctl(&["models", "import", gemma.to_str().unwrap(), "--name", "g"]);
    assert!(!again.ok && again.stderr.contains("exists"), "{}", again.stderr);

    // A file that is not GGUF is refused with the reason, and nothing of it stays behind.
    let junk = server.data_dir.path().join("notes.gguf");
    std::fs::write(&junk, b"these are my notes, not a model").unwrap();
    let bad = ctl(&["models", "import", junk.to_str().unwrap(), "--name", "junk"]);
    assert!(!bad.ok && bad.stderr.contains("not a GGUF file"), "{}", bad.stderr);
    // ayushctl refuses it before uploading; the server refuses it too when sent anyway.
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/octet-stream")];
    let r =
        server.client().raw("POST", "/api/admin/models?name=junk&source=notes.gguf", &headers, "not a model");
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("upload of notes.gguf: not a GGUF file"), "{}", r.body);
    let r = server.client().raw("POST", "/api/admin/models?name=g", &headers, "not a model either");
    assert_eq!(r.status, 409, "{}", r.body);
    let leftovers: Vec<_> = std::fs::read_dir(&models_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.starts_with("junk"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    assert!(ctl(&["models", "verify", "g"]).stdout.contains("matches its manifest"));
    assert!(ctl(&["models", "set-default", "g"]).ok);
    assert_eq!(ctl(&["-o", "json", "models", "list"]).json()[0]["default"], true);

    // Only admins manage models.
    server.create_user("pat", "user", USER_PW);
    let user_token = server.key_signed_in("pat", USER_PW);
    let denied = server.ctl_remote(&user_token, &["models", "remove", "g"], None);
    assert!(!denied.ok && denied.stderr.contains("auth.forbidden"), "{}", denied.stderr);

    assert!(ctl(&["models", "remove", "g"]).ok);
    assert_eq!(ctl(&["-o", "json", "models", "list"]).json(), json!([]));
    assert!(!models_dir.join("g.gguf").exists());
}

#[test]
fn people_manage_their_own_api_keys_and_admins_anyones() {
    let server = server_with_admin();
    server.create_user("pia", "user", USER_PW);
    server.create_user("quinn", "user", USER_PW);
    let mut pia = server.client();
    assert_eq!(pia.login("pia", USER_PW).status, 200);
    let made = pia.send_json("POST", "/api/keys", &json!({"name": "laptop", "expires_days": 30}));
    assert_eq!(made.status, 201, "{}", made.body);
    let made = made.json();
    let (id, secret) = (made["key"]["id"].as_i64().unwrap(), made["secret"].as_str().unwrap().to_string());
    assert!(made["key"].get("token_hash").is_none(), "only the fingerprint is stored, and never shown");
    let listed = pia.get("/api/keys").json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(pia.get("/keys").body.contains("laptop"), "the keys page lists it");

    let bearer = format!("Bearer {secret}");
    let r = server.client().raw("GET", "/v1/models", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 200, "the key works: {}", r.body);

    let mut quinn = server.client();
    assert_eq!(quinn.login("quinn", USER_PW).status, 200);
    assert_eq!(quinn.send_json("DELETE", &format!("/api/keys/{id}"), &json!({})).status, 404, "not quinn's");
    assert_eq!(quinn.get("/api/admin/keys").status, 403);
    assert_eq!(pia.send_json("DELETE", &format!("/api/keys/{id}"), &json!({})).status, 204);
    let r = server.client().raw("GET", "/v1/models", &[("Authorization", &bearer)], "");
    assert_eq!(r.status, 401, "revoked at once: {}", r.body);
    assert!(r.body.contains("invalid_api_key"), "in OpenAI's error shape: {}", r.body);

    // Admins, remotely through ayushctl: a person's keys are theirs to make, so a script gets a
    // service account; admins list everyone's keys and revoke any.
    let admin = server.token_for("root-admin");
    let refused =
        server.ctl_remote(&admin, &["-o", "json", "keys", "create", "--user", "quinn", "--name", "ci"], None);
    assert!(!refused.ok && refused.stderr.contains("quinn's keys are made by quinn"), "{}", refused.stderr);
    let svc = server.ctl_remote(&admin, &["user", "create", "ci-bot", "--role", "user", "--service"], None);
    assert!(svc.ok, "{}", svc.stderr);
    let made = server.ctl_remote(
        &admin,
        &["-o", "json", "keys", "create", "--user", "ci-bot", "--name", "ci"],
        None,
    );
    assert!(made.ok, "{}", made.stderr);
    let bots = made.json()["key"]["id"].as_i64().unwrap().to_string();
    let all = server.ctl_remote(&admin, &["-o", "json", "keys", "list", "--user", "ci-bot"], None).json();
    assert_eq!(all[0]["user"], "ci-bot");
    let quinns =
        quinn.send_json("POST", "/api/keys", &json!({"name": "mine"})).json()["key"]["id"].to_string();
    assert!(server.ctl_remote(&admin, &["keys", "revoke", &quinns], None).ok, "admins revoke anyone's");
    assert!(server.ctl_remote(&admin, &["keys", "revoke", &bots], None).ok);
}
