//! The authorization matrix: every route the server serves (read from the registry the router
//! is built from, so a new route without a row here fails) × every kind of caller, through the
//! real binary. A denial must be the exact status (401 without a live credential, a redirect to
//! the sign-in page for pages, 403 for the wrong role, 404 for someone else's things); an
//! allowed call must get past the guard (anything but 401/403 or a trip to the sign-in page,
//! and never a 5xx).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{Client, Reply, Server};
use serde_json::json;
use std::collections::BTreeSet;

const PW: &str = "matrix password 1";

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// uma, a user, who owns the things `{id}` and `{name}` point at.
    User,
    /// ole, another user.
    Other,
    Auditor,
    Admin,
    /// A service account, by its API key.
    Service,
    /// uma's key, revoked.
    Revoked,
    /// uma's key, expired.
    Expired,
    /// A key of a user since disabled.
    Disabled,
    /// A key of a user whose password was since reset.
    Reset,
}

const EVERYONE: [Who; 10] = [
    Who::Anonymous,
    Who::Revoked,
    Who::Expired,
    Who::Disabled,
    Who::Reset,
    Who::Service,
    Who::Auditor,
    Who::Other,
    Who::Admin,
    // Last, so what the owner may do (delete, revoke) comes after everyone else was refused.
    Who::User,
];

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Anyone, signed in or not.
    Open,
    /// Any signed-in account.
    Any,
    /// Someone who chats: users and admins, not auditors or service accounts.
    Chat,
    Admin,
    Auditor,
    /// `/v1`: users, admins and service accounts.
    Api,
}

/// Whose things a route's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owned {
    /// Nobody's in particular.
    No,
    /// uma's: anyone else finds nothing there.
    Uma,
    /// uma's, which admins may also see the outline of and remove (a personal collection's
    /// name, owner and size, never its documents), for data governance.
    UmaOrAdmin,
    /// uma's, where admins, who know the collection exists, are refused (403).
    UmaAdminRefused,
}

/// A route's row: what it needs, whether it is a page (HTML answers, forms), and whose things
/// its path names.
struct Row {
    method: &'static str,
    path: &'static str,
    need: Need,
    page: bool,
    owned: Owned,
}

const fn api(method: &'static str, path: &'static str, need: Need) -> Row {
    Row { method, path, need, page: false, owned: Owned::No }
}
const fn mine(method: &'static str, path: &'static str) -> Row {
    Row { method, path, need: Need::Chat, page: false, owned: Owned::Uma }
}
const fn page(method: &'static str, path: &'static str, need: Need) -> Row {
    Row { method, path, need, page: true, owned: Owned::No }
}
const fn my_page(method: &'static str, path: &'static str) -> Row {
    Row { method, path, need: Need::Chat, page: true, owned: Owned::Uma }
}

use Need::*;

const ROWS: &[Row] = &[
    api("GET", "/livez", Open),
    api("GET", "/readyz", Open),
    api("GET", "/metrics", Open),
    api("GET", "/static/app.css", Open),
    api("GET", "/static/js/{name}", Open),
    api("GET", "/static/fonts/latinmodern-math.woff2", Open),
    api("GET", "/theme.css", Open),
    api("GET", "/theme/logo", Open),
    api("GET", "/theme/favicon", Open),
    // 404 without a custom stylesheet: past the guard all the same.
    api("GET", "/theme/custom.css", Open),
    api("GET", "/theme/icon-{size}.png", Open),
    api("GET", "/manifest.webmanifest", Open),
    api("GET", "/sw.js", Open),
    page("GET", "/notice", Any),
    page("POST", "/account/appearance", Any),
    page("POST", "/notice", Any),
    page("GET", "/admin/models", Admin),
    api("POST", "/admin/models/upload", Admin),
    page("POST", "/admin/models/{name}/verify", Admin),
    page("POST", "/admin/models/{name}/default", Admin),
    page("POST", "/admin/models/{name}/remove", Admin),
    page("POST", "/admin/models/{name}/allow", Admin),
    page("POST", "/admin/models/{name}/disallow", Admin),
    page("GET", "/admin/assistants", Admin),
    page("POST", "/admin/assistants", Admin),
    page("POST", "/admin/assistants/{name}", Admin),
    page("POST", "/admin/assistants/{name}/remove", Admin),
    page("GET", "/admin/theme", Admin),
    page("POST", "/admin/theme", Admin),
    api("PUT", "/admin/theme/{image}", Admin),
    page("POST", "/admin/theme/{image}/remove", Admin),
    api("GET", "/api/admin/theme", Admin),
    api("PUT", "/api/admin/theme", Admin),
    api("POST", "/api/auth/login", Open),
    api("POST", "/api/auth/logout", Any),
    api("GET", "/api/me", Any),
    api("GET", "/api/admin/users", Admin),
    api("POST", "/api/admin/users", Admin),
    api("GET", "/api/admin/users/{username}", Admin),
    api("PATCH", "/api/admin/users/{username}", Admin),
    api("POST", "/api/admin/users/{username}/password", Admin),
    api("POST", "/api/admin/users/{username}/link", Admin),
    api("POST", "/api/admin/users/{username}/deprovision", Admin),
    api("GET", "/api/admin/groups", Admin),
    api("POST", "/api/admin/groups", Admin),
    api("GET", "/api/admin/groups/{name}", Admin),
    api("DELETE", "/api/admin/groups/{name}", Admin),
    api("PUT", "/api/admin/groups/{name}/members/{username}", Admin),
    api("DELETE", "/api/admin/groups/{name}/members/{username}", Admin),
    api("GET", "/api/admin/models", Admin),
    api("POST", "/api/admin/models", Admin),
    api("DELETE", "/api/admin/models/{name}", Admin),
    api("POST", "/api/admin/models/{name}/verify", Admin),
    api("PUT", "/api/admin/models/{name}/default", Admin),
    api("PUT", "/api/admin/models/{name}/groups/{group}", Admin),
    api("DELETE", "/api/admin/models/{name}/groups/{group}", Admin),
    page("GET", "/audit", Auditor),
    page("POST", "/audit/verify", Auditor),
    page("GET", "/audit/events/{seq}", Auditor),
    api("GET", "/api/audit/events", Auditor),
    api("GET", "/api/audit/events/{seq}", Auditor),
    api("GET", "/api/audit/export", Auditor),
    api("POST", "/api/audit/verify", Auditor),
    api("GET", "/api/audit/status", Auditor),
    api("GET", "/api/audit/checkpoints", Auditor),
    api("GET", "/api/audit/holds", Auditor),
    api("PUT", "/api/audit/holds/{username}", Auditor),
    api("DELETE", "/api/audit/holds/{username}", Auditor),
    page("POST", "/audit/holds", Auditor),
    page("POST", "/audit/holds/{username}/release", Auditor),
    api("GET", "/api/models", Chat),
    api("GET", "/api/conversations", Chat),
    api("POST", "/api/conversations", Chat),
    mine("GET", "/api/conversations/{id}"),
    mine("PATCH", "/api/conversations/{id}"),
    mine("DELETE", "/api/conversations/{id}"),
    mine("POST", "/api/conversations/{id}/messages"),
    mine("POST", "/api/conversations/{id}/files"),
    mine("POST", "/api/conversations/{id}/regenerate"),
    mine("POST", "/api/conversations/{id}/continue"),
    mine("POST", "/api/conversations/{id}/messages/{message_id}/edit"),
    page("GET", "/account", Any),
    page("GET", "/admin/usage", Admin),
    page("GET", "/admin/usage/export.csv", Admin),
    page("GET", "/admin/quotas", Admin),
    page("GET", "/admin/status", Admin),
    api("GET", "/api/admin/status", Admin),
    page("POST", "/admin/prices", Admin),
    page("POST", "/admin/prices/remove", Admin),
    page("POST", "/admin/quotas", Admin),
    page("POST", "/admin/quotas/remove", Admin),
    page("GET", "/keys", Any),
    page("POST", "/keys", Any),
    Row { method: "POST", path: "/keys/{id}/revoke", need: Any, page: true, owned: Owned::Uma },
    api("GET", "/api/keys", Any),
    api("POST", "/api/keys", Any),
    Row { method: "DELETE", path: "/api/keys/{id}", need: Any, page: false, owned: Owned::Uma },
    api("GET", "/api/admin/keys", Admin),
    api("POST", "/api/admin/keys", Admin),
    api("DELETE", "/api/admin/keys/{id}", Admin),
    api("GET", "/api/collections", Chat),
    api("POST", "/api/collections", Chat),
    Row { method: "GET", path: "/api/collections/{name}", need: Chat, page: false, owned: Owned::UmaOrAdmin },
    Row {
        method: "DELETE",
        path: "/api/collections/{name}",
        need: Chat,
        page: false,
        owned: Owned::UmaOrAdmin,
    },
    api("PUT", "/api/collections/{name}/readers/{group}", Admin),
    api("DELETE", "/api/collections/{name}/readers/{group}", Admin),
    mine("GET", "/api/collections/{name}/documents"),
    Row {
        method: "POST",
        path: "/api/collections/{name}/documents",
        need: Chat,
        page: false,
        owned: Owned::UmaAdminRefused,
    },
    mine("DELETE", "/api/collections/{name}/documents/{id}"),
    mine("GET", "/api/collections/{name}/documents/{id}/file"),
    api("GET", "/api/jobs", Chat),
    mine("GET", "/api/jobs/{id}"),
    mine("POST", "/api/jobs/{id}/cancel"),
    api("GET", "/api/search", Chat),
    api("GET", "/api/admin/index", Admin),
    api("POST", "/api/admin/index/rebuild", Admin),
    api("POST", "/api/admin/backup", Admin),
    page("GET", "/collections", Chat),
    page("POST", "/collections", Chat),
    my_page("GET", "/collections/{name}"),
    // The page's scripts send files as JSON-API calls do, with the form token in a header.
    Row {
        method: "POST",
        path: "/collections/{name}/upload",
        need: Chat,
        page: false,
        owned: Owned::UmaAdminRefused,
    },
    my_page("POST", "/collections/{name}/remove"),
    my_page("POST", "/collections/{name}/documents/{id}/remove"),
    mine("POST", "/chat/{id}/attach"),
    page("GET", "/search", Chat),
    api("GET", "/auth/oidc/{provider}/start", Open),
    api("GET", "/auth/oidc/{provider}/callback", Open),
    api("GET", "/api/presets", Chat),
    api("GET", "/api/admin/presets", Admin),
    api("POST", "/api/admin/presets", Admin),
    api("GET", "/api/admin/usage", Admin),
    api("GET", "/api/admin/prices", Admin),
    api("PUT", "/api/admin/prices", Admin),
    api("DELETE", "/api/admin/prices/{provider}/{model}", Admin),
    api("GET", "/api/admin/quotas", Admin),
    api("PUT", "/api/admin/quotas", Admin),
    api("DELETE", "/api/admin/quotas", Admin),
    api("GET", "/api/me/usage", Any),
    api("GET", "/api/admin/presets/{name}", Admin),
    api("PATCH", "/api/admin/presets/{name}", Admin),
    api("DELETE", "/api/admin/presets/{name}", Admin),
    page("GET", "/admin/providers", Admin),
    page("POST", "/admin/providers", Admin),
    page("POST", "/admin/providers/{name}", Admin),
    page("POST", "/admin/providers/{name}/remove", Admin),
    page("POST", "/admin/providers/{name}/test", Admin),
    api("GET", "/api/admin/providers", Admin),
    api("POST", "/api/admin/providers", Admin),
    api("GET", "/api/admin/providers/{name}", Admin),
    api("PATCH", "/api/admin/providers/{name}", Admin),
    api("DELETE", "/api/admin/providers/{name}", Admin),
    api("GET", "/api/admin/providers/{name}/upstream-models", Admin),
    page("GET", "/login", Open),
    page("POST", "/login", Open),
    page("POST", "/logout", Any),
    page("GET", "/admin/sso", Admin),
    page("POST", "/admin/sso/mappings", Admin),
    page("POST", "/admin/sso/mappings/{id}/remove", Admin),
    api("GET", "/api/admin/mappings", Admin),
    api("POST", "/api/admin/mappings", Admin),
    api("DELETE", "/api/admin/mappings/{id}", Admin),
    api("POST", "/api/admin/directory/sync", Admin),
    page("GET", "/", Any),
    page("GET", "/chat", Chat),
    // Another's image is one that does not exist: 404 for everyone here (tests/media.rs).
    api("GET", "/chat/images/{id}", Chat),
    api("GET", "/chat/list", Chat),
    page("GET", "/admin/users", Admin),
    page("POST", "/admin/users", Admin),
    page("POST", "/admin/users/{username}/role", Admin),
    page("POST", "/admin/users/{username}/status", Admin),
    page("POST", "/admin/users/{username}/password", Admin),
    page("GET", "/admin/groups", Admin),
    page("POST", "/admin/groups", Admin),
    page("GET", "/admin/groups/{name}", Admin),
    page("POST", "/admin/groups/{name}/members", Admin),
    page("POST", "/admin/groups/{name}/members/{username}/remove", Admin),
    api("GET", "/v1/models", Api),
    api("POST", "/v1/chat/completions", Api),
    api("POST", "/v1/embeddings", Api),
    api("POST", "/v1/audio/transcriptions", Api),
    api("POST", "/v1/audio/speech", Api),
    api("POST", "/v1/images/generations", Api),
];

/// What a caller must get.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// Past the guard.
    Allowed,
    /// Sent to the sign-in page.
    SignIn,
    Status(u16),
}

fn expected(who: Who, row: &Row) -> Expect {
    if row.need == Open {
        return Expect::Allowed;
    }
    let stale = matches!(who, Who::Anonymous | Who::Revoked | Who::Expired | Who::Disabled | Who::Reset);
    if stale {
        return if row.page { Expect::SignIn } else { Expect::Status(401) };
    }
    let may = match row.need {
        Open | Any => true,
        Chat => matches!(who, Who::User | Who::Other | Who::Admin),
        Admin => who == Who::Admin,
        Auditor => who == Who::Auditor,
        Api => matches!(who, Who::User | Who::Other | Who::Admin | Who::Service),
    };
    if !may {
        return Expect::Status(403);
    }
    // Forms are for browsers: a key is not a session and carries no form token.
    if row.page && row.method == "POST" && who == Who::Service {
        return Expect::Status(403);
    }
    if row.owned == Owned::UmaAdminRefused && who == Who::Admin {
        return Expect::Status(403);
    }
    let owner = who == Who::User || (row.owned == Owned::UmaOrAdmin && who == Who::Admin);
    if row.owned != Owned::No && !owner {
        return Expect::Status(404);
    }
    Expect::Allowed
}

/// One caller's credential.
struct Caller {
    client: Client,
    bearer: Option<String>,
    /// The session's form token, for pages' forms.
    csrf: Option<String>,
}

impl Caller {
    fn call(&mut self, method: &str, path: &str, page: bool) -> Reply {
        let auth = self.bearer.as_ref().map(|k| format!("Bearer {k}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        // A session sends its form token as its pages do; a key has none to send.
        let csrf = self.csrf.clone().unwrap_or_else(|| "none".into());
        headers.push(("X-CSRF-Token", &csrf));
        let body = if page {
            headers.push(("Content-Type", "application/x-www-form-urlencoded"));
            // The keys form also wants a name, so that only the form token decides.
            if path == "/keys" { format!("csrf={csrf}&name=matrix") } else { format!("csrf={csrf}") }
        } else {
            headers.push(("Content-Type", "application/json"));
            // What the routes that take a message read, so that whose conversation it is decides.
            let asks = path.contains("/messages") || path.contains("/edit");
            if asks { r#"{"content": "hello"}"#.to_string() } else { "{}".to_string() }
        };
        let body = if method == "GET" { String::new() } else { body };
        self.client.raw(method, path, &headers, &body)
    }
}

fn session(server: &Server, name: &str) -> Caller {
    let mut client = server.client();
    assert_eq!(client.login(name, PW).status, 200, "{name} signs in");
    let keys = client.get("/keys").body;
    let csrf =
        keys.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).map(str::to_string);
    assert!(csrf.is_some(), "{name}'s form token");
    Caller { client, bearer: None, csrf }
}

fn keyed(server: &Server, key: String) -> Caller {
    Caller { client: server.client(), bearer: Some(key), csrf: None }
}

fn key_id(server: &Server, user: &str, secret: &str) -> String {
    let keys = server.ctl_local(&["-o", "json", "keys", "list", "--user", user], None).json();
    let key = keys.as_array().unwrap().iter().find(|k| secret.starts_with(k["prefix"].as_str().unwrap()));
    key.expect("the key is listed")["id"].to_string()
}

#[test]
fn every_route_answers_every_caller_as_the_rules_say() {
    // Every route has a row, and every row a route.
    let served: BTreeSet<(String, String)> = ayush_server::http::routes::table()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let rows: BTreeSet<(String, String)> =
        ROWS.iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    let missing: Vec<_> = served.difference(&rows).collect();
    assert!(missing.is_empty(), "routes with no row in the matrix: {missing:?}");
    let stale: Vec<_> = rows.difference(&served).collect();
    assert!(stale.is_empty(), "rows for routes that no longer exist: {stale:?}");

    let server = Server::start();
    server.create_user("root", "admin", PW);
    for (name, role) in
        [("uma", "user"), ("ole", "user"), ("ada", "auditor"), ("dis", "user"), ("res", "user")]
    {
        server.create_user(name, role, PW);
    }
    let admin_key = server.token_for("root");
    assert!(
        server.ctl_remote(&admin_key, &["user", "create", "svc", "--role", "user", "--service"], None).ok
    );
    let svc_key = server.ctl_remote(
        &admin_key,
        &["-o", "json", "keys", "create", "--user", "svc", "--name", "m"],
        None,
    );
    let svc_key = svc_key.json()["secret"].as_str().unwrap().to_string();

    // uma's things: a conversation (no model is needed to hold one), a personal collection
    // with a document, its job, and a key to revoke.
    let mut uma = session(&server, "uma");
    let mut umac = server.client();
    assert_eq!(umac.login("uma", PW).status, 200);
    let made = umac.send_json("POST", "/api/collections", &json!({"name": "uma-notes", "personal": true}));
    assert_eq!(made.status, 201, "{}", made.body);
    let uma_key = server.key_signed_in("uma", PW);
    let up = server.client().raw(
        "POST",
        "/api/collections/uma-notes/documents?source=plans.txt&wait=true",
        &[("Authorization", &format!("Bearer {uma_key}")), ("Content-Type", "text/plain")],
        "uma's plans for the year",
    );
    assert!(up.status < 300, "{}", up.body);
    let jobs = umac.get("/api/jobs").json();
    let job_id = jobs.as_array().and_then(|j| j.first()).map(|j| j["id"].to_string()).expect("uma's job");
    let doc_id = umac.get("/api/collections/uma-notes/documents").json()[0]["id"].to_string();
    let conv_id = server
        .open_store()
        .run_blocking(|c| {
            let uma = ayush_server::auth::users::get(c, "uma")?;
            ayush_server::chat::store::create(c, 1_800_000_000, uma.id, "plans", "m", "")
        })
        .map(|c| c.id.to_string())
        .expect("uma's conversation");

    let revoked = server.key_signed_in("uma", PW);
    assert!(server.ctl_local(&["keys", "revoke", &key_id(&server, "uma", &revoked)], None).ok);
    let expired = server.key_signed_in("uma", PW);
    let expired_id: i64 = key_id(&server, "uma", &expired).parse().unwrap();
    server
        .open_store()
        .run_blocking(|c| {
            use ayush_server::store::schema::api_tokens;
            use diesel::prelude::*;
            ayush_server::with_conn!(c, |c| diesel::update(api_tokens::table.find(expired_id))
                .set(api_tokens::expires_at.eq(Some(1_000_000_000i64)))
                .execute(c))?;
            Ok(())
        })
        .unwrap();
    let disabled = server.key_signed_in("dis", PW);
    assert!(server.ctl_local(&["user", "disable", "dis"], None).ok);
    let reset = server.key_signed_in("res", PW);
    let r =
        server.ctl_local(&["user", "reset-password", "res", "--password-stdin"], Some("a new password 22"));
    assert!(r.ok, "{}", r.stderr);
    let victim_key = key_id(&server, "uma", &server.key_signed_in("uma", PW));

    let mut callers: Vec<(Who, Caller)> = vec![
        (Who::Anonymous, Caller { client: server.client(), bearer: None, csrf: None }),
        (Who::Revoked, keyed(&server, revoked)),
        (Who::Expired, keyed(&server, expired)),
        (Who::Disabled, keyed(&server, disabled)),
        (Who::Reset, keyed(&server, reset)),
        (Who::Service, keyed(&server, svc_key)),
        (Who::Auditor, session(&server, "ada")),
        (Who::Other, session(&server, "ole")),
        (Who::Admin, session(&server, "root")),
    ];
    callers.push((
        Who::User,
        std::mem::replace(&mut uma, Caller { client: server.client(), bearer: None, csrf: None }),
    ));
    assert_eq!(callers.iter().map(|(w, _)| *w).collect::<Vec<_>>(), EVERYONE);

    let concrete = |row: &Row| -> String {
        let mut path = row.path.to_string();
        let id = if row.path.contains("/conversations/") || row.path.starts_with("/chat/") {
            conv_id.clone()
        } else if row.path.contains("/keys/") {
            victim_key.clone()
        } else if row.path.contains("/jobs/") {
            job_id.clone()
        } else if row.path.contains("/documents/") {
            doc_id.clone()
        } else {
            "987654".to_string()
        };
        let name = if row.path.contains("collections/{name}") { "uma-notes" } else { "nope" };
        // Files arrive with their name in the query.
        if row.method == "POST"
            && ["/files", "/documents", "/upload", "/attach"].iter().any(|p| row.path.ends_with(p))
        {
            path.push_str("?source=a.txt");
        }
        for (param, value) in [
            ("{id}", id.as_str()),
            ("{name}", name),
            ("{username}", "nobody-here"),
            ("{group}", "nope"),
            ("{seq}", "1"),
            ("{message_id}", "987654"),
            ("{provider}", "nope"),
            ("{image}", "favicon"),
        ] {
            path = path.replace(param, value);
        }
        path
    };

    // Sign-outs last: they end the sessions the other rows use. Deletions after the rest.
    let mut order: Vec<&Row> = ROWS.iter().collect();
    order.sort_by_key(|r| (r.path.ends_with("logout"), r.method == "DELETE" || r.path.ends_with("/remove")));
    let mut wrong = Vec::new();
    let mut checked = 0;
    for row in order {
        let path = concrete(row);
        for (who, caller) in callers.iter_mut() {
            let reply = caller.call(row.method, &path, row.page);
            let to_sign_in = (300..400).contains(&reply.status)
                && reply.header("location").is_some_and(|l| l.starts_with("/login"));
            // Signing out ends on the sign-in page by design.
            let got_ok = !matches!(reply.status, 401 | 403)
                && reply.status < 500
                && (!to_sign_in || row.path == "/logout");
            let ok = match expected(*who, row) {
                Expect::Allowed => got_ok,
                Expect::SignIn => to_sign_in,
                Expect::Status(s) => reply.status == s,
            };
            checked += 1;
            if !ok {
                let body: String = reply.body.chars().take(160).collect();
                wrong.push(format!(
                    "{} {} as {who:?}: expected {:?}, got {} {body}",
                    row.method,
                    path,
                    expected(*who, row),
                    reply.status
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} calls answered against the rules:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Paths no route serves answer in their API's shape; refusals for the role are recorded.
    let mut anyone = server.client();
    let r = anyone.get("/api/no-such-thing");
    assert_eq!((r.status, r.error_code()), (404, "not_found".to_string()), "{}", r.body);
    let r = anyone.get("/v1/no-such-thing");
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (404, Some("unknown_url")), "{}", r.body);
    let denied = server.audit_events("access.denied", None);
    assert!(
        denied.iter().any(|e| e.actor_name == "ada" && e.details.contains("DELETE /api/admin/presets/nope")),
        "no access.denied event for the auditor among the newest {}",
        denied.len()
    );
}
