//! The web UI as a person uses it: headless Chromium signs in as the bootstrap admin, creates a
//! user on the admin page, signs out, and signs in as that user.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use ayush_tests::browser::{Browser, console_errors, fill, sign_in, snap, text_of, text_when, wait_for_url};
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn admin_creates_a_user_who_then_signs_in() {
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();

    // A wrong password shows an error on the sign-in page.
    sign_in(c, &base, "boss", "not the password").await;
    assert!(text_of(c, "[role=alert]").await.contains("wrong username or password"));
    snap(c, "login-error").await;

    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));

    c.find(Locator::LinkText("Users")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Users").await, "Users");
    fill(c, "#nu-username", "newbie").await;
    fill(c, "#nu-display", "New Person").await;
    fill(c, "#nu-password", "newbie password 1").await;
    c.find(Locator::Css("form[action='/admin/users'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(c, "[role=status]").await.contains("Created"));
    snap(c, "admin-users").await;
    let row = text_of(c, "tr[data-user=newbie]").await;
    assert!(row.contains("New Person") && row.contains("active"), "{row}");

    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Sign in").await, "Sign in");

    sign_in(c, &base, "newbie", "newbie password 1").await;
    assert!(text_when(c, "h1", "Welcome, New Person").await.contains("Welcome, New Person"));
    snap(c, "user-home").await;
    let nav = text_of(c, "nav").await;
    assert!(!nav.contains("Users"), "a user sees no admin pages: {nav}");
    c.goto(&format!("{base}/admin/users")).await.unwrap();
    assert_eq!(text_when(c, "h1", "Not allowed").await, "Not allowed");

    browser.close().await;
}

/// A compliance officer signs in, lands on the audit log, verifies it, filters it, follows a
/// user's timeline and places a legal hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn auditor_reviews_the_audit_log() {
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    server.create_user("ada", "auditor", "auditor password 1");
    server.create_user("bob", "user", "bob password 1234");
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "bob", "wrong password!!").await;
    assert!(text_of(c, "[role=alert]").await.contains("wrong username or password"));

    sign_in(c, &base, "ada", "auditor password 1").await;
    assert_eq!(text_when(c, "h1", "Audit log").await, "Audit log", "an auditor's home is the audit log");
    let nav = text_of(c, "nav").await;
    assert!(nav.contains("Audit log") && !nav.contains("New chat") && !nav.contains("Users"), "{nav}");

    c.find(Locator::Css("#verify-now")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "[data-integrity]", "intact").await, "intact");
    assert!(text_of(c, "#integrity-text").await.contains("verified"));

    fill(c, "#f-action", "auth.*").await;
    c.find(Locator::Css("form.audit-filters button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_url(c, "action=auth.").await;
    let table = text_of(c, "table.audit-table").await;
    assert!(table.contains("auth.login") && !table.contains("user.create"), "{table}");
    assert!(table.contains("failure"), "bob's failed sign-in is there: {table}");
    snap(c, "audit-viewer").await;

    c.goto(&format!("{base}/audit?user=bob")).await.unwrap();
    assert!(text_when(c, "#events", "Timeline of bob").await.contains("Timeline of bob"));
    let timeline = text_of(c, "table.audit-table").await;
    assert!(timeline.contains("user.create") && timeline.contains("auth.login"), "{timeline}");

    fill(c, "#h-user", "bob").await;
    fill(c, "#h-reason", "Matter 2026-114").await;
    c.find(Locator::Css("form[action='/audit/holds'] button")).await.unwrap().click().await.unwrap();
    assert!(text_when(c, "tr[data-hold=bob]", "Matter").await.contains("Matter 2026-114"));

    c.goto(&format!("{base}/chat")).await.unwrap();
    assert_eq!(text_when(c, "h1", "Not allowed").await, "Not allowed", "auditors do not chat");
    browser.close().await;
}

/// An admin maps directory groups to a role and to an Ayush group on the Sign-in page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn admin_maps_directory_groups_on_the_sign_in_page() {
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    assert!(server.ctl_local(&["group", "create", "hr"], None).ok);
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome").await.contains("Welcome"));
    c.find(Locator::LinkText("Sign-in")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Sign-in").await, "Sign-in");
    assert!(text_of(c, "#sources + p, #sources ~ p").await.contains("Only local accounts"));

    fill(c, "#m-group", "HR-Staff").await;
    c.find(Locator::Css("#m-ayush option[value=hr]")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#m-role option[value=auditor]")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("form[action='/admin/sso/mappings'] button")).await.unwrap().click().await.unwrap();
    let row = text_when(c, "tr[data-mapping]", "HR-Staff").await;
    assert!(row.contains("auditor") && row.contains("hr"), "{row}");
    snap(c, "admin-sso").await;
    let listed = server.ctl_local(&["-o", "json", "sso", "mappings"], None).json();
    assert_eq!(listed[0]["directory_group"], "HR-Staff");

    c.find(Locator::Css("tr[data-mapping] button.danger")).await.unwrap().click().await.unwrap();
    c.accept_alert().await.unwrap(); // "Really remove …?"
    let flash = text_when(c, "[role=status]", "removed").await;
    assert!(flash.contains("removed"), "{flash}");
    assert!(c.find(Locator::Css("tr[data-mapping]")).await.is_err());
    browser.close().await;
}

/// Someone creates an API key on their page, sees it once, and revokes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn a_user_creates_and_revokes_an_api_key() {
    let server = Server::start();
    server.create_user("kim", "user", "kim password 1234");
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "kim", "kim password 1234").await;
    assert!(text_when(c, "h1", "Welcome").await.contains("Welcome"));
    c.find(Locator::LinkText("API keys")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "API keys").await, "API keys");
    fill(c, "#k-name", "notebook").await;
    fill(c, "#k-days", "30").await;
    c.find(Locator::Css("form[action='/keys'] button")).await.unwrap().click().await.unwrap();
    let secret = text_when(c, "#key-secret", "ayush_").await;
    assert!(secret.starts_with("ayush_"), "{secret}");
    snap(c, "api-keys").await;
    let bearer = format!("Bearer {secret}");
    assert_eq!(server.client().raw("GET", "/v1/models", &[("Authorization", &bearer)], "").status, 200);

    c.goto(&format!("{base}/keys")).await.unwrap();
    assert!(c.find(Locator::Css("#key-secret")).await.is_err(), "shown once");
    let row = text_of(c, "tr[data-key]").await;
    assert!(row.contains("notebook") && row.contains("active"), "{row}");
    c.find(Locator::Css("tr[data-key] button.danger")).await.unwrap().click().await.unwrap();
    c.accept_alert().await.unwrap();
    assert!(text_when(c, "[role=status]", "revoked").await.contains("revoked"));
    assert!(text_of(c, "tr[data-key]").await.contains("revoked"));
    assert_eq!(server.client().raw("GET", "/v1/models", &[("Authorization", &bearer)], "").status, 401);
    browser.close().await;
}

/// An admin adds a provider on the Providers page (the key field is a password field and the
/// key is never shown back), tests its connection, and chats with its model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn admin_adds_a_provider_and_chats_with_its_model() {
    use ayush_tests::upstream::{KEY, Upstream};
    let upstream = Upstream::start(1);
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));

    c.find(Locator::LinkText("Providers")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Providers").await, "Providers");
    assert!(text_of(c, "main").await.contains("Air-gapped"), "the page says what the egress policy allows");
    fill(c, "#p-name", "lab").await;
    fill(c, "#p-url", &format!("{}/v1", upstream.url())).await;
    fill(c, "#p-key", KEY).await;
    fill(c, "#p-models", "echo").await;
    c.find(Locator::Css("form[action='/admin/providers'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(c, "[role=status]").await.contains("Created"));
    let card = text_of(c, "section[data-provider=lab]").await;
    assert!(card.contains("API key: set") && !card.contains(KEY), "{card}");
    let source = c.source().await.unwrap();
    assert!(!source.contains(KEY), "the key is not in the page");

    c.find(Locator::Css("form[action='/admin/providers/lab/test'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The page before showed "Created." in the same place: wait for the new notice.
    let notice = text_when(c, "[role=status]", "lab answered").await;
    assert!(notice.contains("lab answered. It offers: echo, count-16"), "{notice}");
    snap(c, "admin-providers").await;

    // A forbidden URL is refused with the reason, and nothing is stored.
    fill(c, "#p-name", "far").await;
    fill(c, "#p-url", "https://10.255.255.1/v1").await;
    c.find(Locator::Css("form[action='/admin/providers'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_of(c, "[role=alert]").await.contains("egress policy refuses 10.255.255.1:443"));
    assert!(c.find(Locator::Css("section[data-provider=far]")).await.is_err());

    c.goto(&format!("{base}/chat")).await.unwrap();
    let select = c.find(Locator::Css("#model")).await.unwrap();
    select.select_by_value("lab/echo").await.unwrap();
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("hello from the browser").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    let answer = text_when(c, ".msg.assistant .body", "Echo: hello from the browser").await;
    assert!(answer.contains("Echo: hello from the browser"), "{answer}");
    browser.close().await;
}

/// An admin prices a provider's model, reads the usage it brought on the console's usage page
/// (charts, figures, the breakdown and its CSV), and sets a quota by keyboard alone; the person
/// it holds for sees it on their account page. No page logs an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn admin_reads_usage_and_sets_prices_and_quotas_in_the_console() {
    use ayush_tests::upstream::{KEY, Upstream};
    use fantoccini::key::Key;
    let upstream = Upstream::start(1);
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    server.create_user("ana", "user", "ana password 1234");
    let base_url = format!("{}/v1", upstream.url());
    let add = [
        "providers",
        "add",
        "lab",
        "--kind",
        "openai",
        "--base-url",
        &base_url,
        "--model",
        "echo",
        "--api-key-stdin",
    ];
    assert!(server.ctl_local(&add, Some(KEY)).ok);
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));

    // A price, set on the providers page.
    c.find(Locator::LinkText("Providers")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Providers").await, "Providers");
    c.find(Locator::Css("#pr-model")).await.unwrap().select_by_value("lab/echo").await.unwrap();
    fill(c, "#pr-in", "1000").await;
    fill(c, "#pr-out", "2000").await;
    c.find(Locator::Css("form[action='/admin/prices'] button")).await.unwrap().click().await.unwrap();
    assert!(text_of(c, "[role=status]").await.contains("Saved"));
    assert!(text_of(c, "tr[data-price='lab/echo']").await.contains("1000"));
    assert_eq!(console_errors(c).await, Vec::<String>::new());

    // Some answers to count.
    let key = server.key_signed_in("ana", "ana password 1234");
    let mut api = server.client();
    for _ in 0..3 {
        let ask = serde_json::json!({"model": "lab/echo", "messages": [{"role": "user", "content": "hello there"}]});
        assert_eq!(api.v1_chat(&key, &ask).status, 200);
    }

    c.find(Locator::LinkText("Usage")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Usage").await, "Usage");
    assert_eq!(text_of(c, "[data-figure=requests]").await, "3");
    assert!(text_of(c, "[data-figure=cost]").await.ends_with("USD"));
    assert_eq!(c.find_all(Locator::Css("svg.chart")).await.unwrap().len(), 3, "tokens, cost, errors");
    assert!(c.find_all(Locator::Css("svg.chart rect")).await.unwrap().len() >= 2, "today has bars");
    assert!(text_of(c, "tr[data-key=ana]").await.contains("0.0 %"), "ana's line, no errors");
    assert!(text_of(c, "li[data-user=ana]").await.contains("tokens"));
    snap(c, "admin-usage").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    let csv =
        c.find(Locator::LinkText("Download as CSV")).await.unwrap().attr("href").await.unwrap().unwrap();
    let mut admin = server.client();
    admin.login("boss", "boss password 123");
    let export = admin.get(&csv);
    assert_eq!(export.status, 200);
    assert!(export.body.starts_with("key,requests,"), "{}", export.body);
    assert!(export.body.contains("\r\nana,3,"), "{}", export.body);

    // A quota, set with the keyboard alone: type, tab, choose with the arrow keys, Enter.
    c.find(Locator::LinkText("Quotas")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Quotas").await, "Quotas");
    let kind = c.find(Locator::Css("#q-kind")).await.unwrap();
    kind.send_keys(&Key::Down.to_string()).await.unwrap();
    c.find(Locator::Css("#q-name")).await.unwrap().send_keys("ana").await.unwrap();
    let keys = format!("{tab}{tab}5000{tab}{tab}{tab}2{enter}", tab = Key::Tab, enter = Key::Enter);
    c.find(Locator::Css("#q-name")).await.unwrap().send_keys(&keys).await.unwrap();
    assert!(text_when(c, "[role=status]", "Saved").await.contains("Saved"));
    let row =
        text_of(c, "#all-quotas ~ .table-wrap tbody tr, section[aria-labelledby=all-quotas] tbody tr").await;
    assert!(row.to_lowercase().contains("user ana") && row.contains("5,000") && row.contains("2"), "{row}");
    snap(c, "admin-quotas").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new());

    // The status page says how the server stands.
    c.find(Locator::LinkText("Status")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Status").await, "Status");
    assert!(text_of(c, "[data-status=database]").await.starts_with("answers in"));
    assert!(text_of(c, "[data-status=disk-free]").await.contains(" of "), "statvfs answered");
    assert_eq!(text_of(c, "[data-status=audit-failures]").await, "0");
    snap(c, "admin-status").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    let status = admin.get("/api/admin/status").json();
    assert!(
        status["uptime_secs"].as_i64().unwrap() >= 0 && status["database"]["reachable"] == true,
        "{status}"
    );

    // Ana sees it on her account page.
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    sign_in(c, &base, "ana", "ana password 1234").await;
    c.find(Locator::LinkText("Account and usage")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Your account").await, "Your account");
    let limit = text_of(c, "tr[data-limit=tokens_per_day]").await;
    assert!(limit.to_lowercase().contains("tokens today") && limit.contains("5,000"), "{limit}");
    assert!(text_of(c, "tr[data-pool=remote]").await.contains("3"), "three remote answers today");
    snap(c, "account").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    browser.close().await;
}

/// How many pixels of a screenshot are `rgb` (within a little, for smoothing).
fn pixels_of(png: &[u8], rgb: [u8; 3]) -> usize {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p.len() >= 3 && (0..3).all(|i| p[i].abs_diff(rgb[i]) <= 3))
        .count()
}

/// An admin themes the installation on the console's theme page, by keyboard where a form is;
/// the sign-in and chat pages then carry the name, the notice, the footer and the colour, as
/// their screenshots show; a person accepts the notice before the chat opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn admin_themes_the_installation_and_the_pages_show_it() {
    use fantoccini::key::Key;
    const BRAND: [u8; 3] = [0xc2, 0x25, 0x5c];
    const DEFAULT_BRAND: [u8; 3] = [0x3b, 0x5b, 0xdb];
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    server.create_user("ana", "user", "ana password 1234");
    let logo = tempfile::Builder::new().suffix(".svg").tempfile().unwrap();
    std::fs::write(
        logo.path(),
        r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><circle cx="5" cy="5" r="5" fill="#c2255c"/></svg>"##,
    )
    .unwrap();
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    c.goto(&format!("{base}/login")).await.unwrap();
    let before = c.screenshot().await.unwrap();
    assert_eq!(pixels_of(&before, BRAND), 0);
    assert!(pixels_of(&before, DEFAULT_BRAND) > 500, "the default button is in the default colour");

    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));
    c.find(Locator::LinkText("Theme")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Theme").await, "Theme");
    assert_eq!(console_errors(c).await, Vec::<String>::new());

    // A colour too pale to read is refused, with the reason, and the fields keep what was typed.
    fill(c, "#t-name", "Acme Assist").await;
    fill(c, "#t-primary", "#ffd8a8").await;
    c.find(Locator::Css("#t-primary")).await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();
    let refused = text_when(c, "[role=alert]", "contrast").await;
    assert!(refused.contains("contrast"), "{refused}");
    let kept = c.find(Locator::Css("#t-name")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(kept.as_deref(), Some("Acme Assist"));
    // The browser logs the refusal's status, and nothing else.
    let logged = console_errors(c).await;
    assert!(logged.iter().all(|e| e.contains("422")), "{logged:?}");

    fill(c, "#t-primary", "#c2255c").await;
    c.find(Locator::Css("#t-mode")).await.unwrap().select_by_value("light").await.unwrap();
    fill(c, "#t-banner", "Authorised Acme business only. Use is monitored.").await;
    fill(c, "#t-links", "Help | https://intranet.acme.example/help").await;
    c.find(Locator::Css("#t-name")).await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();
    // The notice holds everyone, its author too, until they accept it; then the page goes on.
    wait_for_url(c, "/notice").await;
    c.find(Locator::Css("#acknowledge")).await.unwrap().click().await.unwrap();
    let saved = text_when(c, ".flash", "Theme saved").await;
    assert!(saved.contains("Theme saved"), "{saved}");
    // The logo, uploaded from the page; it reloads to show it.
    c.find(Locator::Css("#file-logo")).await.unwrap().send_keys(logo.path().to_str().unwrap()).await.unwrap();
    assert!(text_when(c, ".theme-image[data-image=logo]", "Set here").await.contains("Set here"));
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    snap(c, "admin-theme").await;
    let title = c.title().await.unwrap();
    assert_eq!(title, "Theme · Acme Assist");

    // Signed out: the sign-in page carries the theme.
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Sign in").await, "Sign in");
    assert!(text_of(c, "#sign-in-notice").await.contains("Use is monitored."));
    assert!(text_of(c, ".brand.big").await.contains("Acme Assist"));
    assert!(text_of(c, ".site-footer").await.contains("Help"));
    let sign_in_page = c.screenshot().await.unwrap();
    snap(c, "themed-sign-in").await;
    assert!(pixels_of(&sign_in_page, BRAND) > 500, "the sign-in button takes the primary colour");
    assert_eq!(pixels_of(&sign_in_page, DEFAULT_BRAND), 0, "nothing is left in the default colour");

    // A person accepts the notice, then chats under the theme.
    sign_in(c, &base, "ana", "ana password 1234").await;
    wait_for_url(c, "/notice").await;
    assert!(text_of(c, "#notice-text").await.contains("Authorised Acme business only."));
    c.find(Locator::Css("#acknowledge")).await.unwrap().click().await.unwrap();
    c.goto(&format!("{base}/chat")).await.unwrap();
    wait_for_url(c, "/chat").await;
    assert!(text_of(c, ".brand").await.contains("Acme Assist"));
    let chat = c.screenshot().await.unwrap();
    snap(c, "themed-chat").await;
    assert!(pixels_of(&chat, BRAND) > 200, "the chat page takes the primary colour");
    assert_eq!(pixels_of(&chat, DEFAULT_BRAND), 0);
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    let acks = server.audit_events("notice.acknowledged", None);
    assert_eq!(acks.iter().map(|e| e.actor_name.as_str()).collect::<Vec<_>>(), ["ana", "boss"]);
    browser.close().await;
}

/// An admin imports a GGUF file on the console's models page (with progress), sees the
/// quantization the file declares, verifies it, restricts it to a group and back, makes an
/// assistant on it, and removes it; every step is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
async fn admin_imports_and_manages_a_model_in_the_console() {
    use fantoccini::key::Key;
    let gemma = ayush_tests::test_model(ayush_tests::GEMMA_FILE);
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    assert!(server.ctl_local(&["group", "create", "eng"], None).ok);
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));
    c.find(Locator::LinkText("Models")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Models").await, "Models");
    assert!(text_of(c, "#all-models").await.contains('0'));

    // The name comes from the file's; the upload shows its progress, then the page reloads.
    c.find(Locator::Css("#model-file")).await.unwrap().send_keys(gemma.to_str().unwrap()).await.unwrap();
    let suggested = c.find(Locator::Css("#model-name")).await.unwrap().prop("value").await.unwrap();
    assert_eq!(suggested.as_deref(), Some("gemma-3-270m-q4_k_m"));
    fill(c, "#model-name", "gemma").await;
    c.find(Locator::Css("#model-import")).await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();
    let imported = text_when(c, ".flash", "Model imported").await;
    assert!(imported.contains("Model imported"), "{imported}");
    let row = text_of(c, "tr[data-model=gemma]").await;
    assert!(row.contains("Q4_K_M") && row.contains("Everyone"), "{row}");
    snap(c, "admin-models").await;

    c.find(Locator::Css("tr[data-model=gemma] form[action$='/verify'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_when(c, ".flash", "matches").await.contains("matches its manifest"));

    c.find(Locator::Css("tr[data-model=gemma] form[action$='/allow'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_when(c, ".flash", "Group added").await.contains("Group added"));
    assert!(text_of(c, "tr[data-model=gemma]").await.contains("eng"));
    c.find(Locator::Css("tr[data-model=gemma] form[action$='/disallow'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_when(c, ".flash", "taken off").await.contains("taken off"));
    assert!(text_of(c, "tr[data-model=gemma]").await.contains("Everyone"));

    // An assistant on that model, made, changed and removed on the assistants page.
    c.find(Locator::LinkText("Assistants")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Assistants").await, "Assistants");
    fill(c, "#a-name", "helper").await;
    c.find(Locator::Css("#a-model")).await.unwrap().select_by_value("gemma").await.unwrap();
    fill(c, "#a-description", "Answers questions about leave").await;
    fill(c, "#a-prompt", "Answer briefly.").await;
    c.find(Locator::Css("#a-name")).await.unwrap().send_keys(&Key::Enter.to_string()).await.unwrap();
    assert!(text_when(c, ".flash", "Created").await.contains("Created"));
    assert!(text_of(c, "article[data-assistant=helper]").await.contains("Answers questions about leave"));
    c.find(Locator::Css("article[data-assistant=helper] summary")).await.unwrap().click().await.unwrap();
    fill(c, "article[data-assistant=helper] input[name=description]", "Answers HR questions").await;
    c.find(Locator::Css("article[data-assistant=helper] form.grid-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert!(text_when(c, ".flash", "Saved").await.contains("Saved"));
    assert!(text_of(c, "article[data-assistant=helper]").await.contains("Answers HR questions"));
    let listed = server.ctl_local(&["-o", "json", "assistants", "list"], None).json();
    assert_eq!(listed[0]["system_prompt"], "Answer briefly.", "{listed}");
    c.find(Locator::Css("article[data-assistant=helper] summary")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("article[data-assistant=helper] form.remove-assistant button"))
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    // The page asks once more before anything is removed.
    c.accept_alert().await.unwrap();
    let removed = text_when(c, ".flash", "Assistant removed").await;
    assert!(removed.contains("Assistant removed"), "{removed}");
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    c.find(Locator::LinkText("Models")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Models").await, "Models");

    c.find(Locator::Css("tr[data-model=gemma] details.confirm summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("tr[data-model=gemma] form[action$='/remove'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.accept_alert().await.unwrap();
    assert!(text_when(c, ".flash", "Model removed").await.contains("Model removed"));
    assert!(text_of(c, "#all-models").await.contains('0'));
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    for action in
        ["model.import", "model.verify", "model.allow_group", "model.disallow_group", "model.remove"]
    {
        assert_eq!(server.audit_events(action, None).len(), 1, "{action}");
    }
    browser.close().await;
}

/// Every page of the console, and those each person and the auditor use, as a keyboard user
/// meets them: Tab reaches every control in turn, each shows its focus, and the browser logs
/// no error (no failed script, no refused resource, no CSP violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn every_page_works_by_keyboard_without_console_errors() {
    use ayush_tests::browser::walk_by_keyboard;
    let server = Server::start();
    server.create_user("boss", "admin", "boss password 123");
    server.create_user("ada", "auditor", "ada password 1234");
    assert!(server.ctl_local(&["group", "create", "eng"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "eng", "boss"], None).ok);
    let made = server.ctl_local(&["collections", "create", "handbook", "--group", "eng"], None);
    assert!(made.ok, "{}", made.stderr);
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    c.goto(&format!("{base}/login")).await.unwrap();
    walk_by_keyboard(c, "/login").await;
    sign_in(c, &base, "boss", "boss password 123").await;
    assert!(text_when(c, "h1", "Welcome, boss").await.contains("Welcome, boss"));
    let pages =
        ["/", "/chat", "/search", "/collections", "/collections/handbook", "/keys", "/admin/groups/eng"]
            .into_iter()
            .chain(ayush_tests::browser::ADMIN_PAGES);
    for page in pages {
        c.goto(&format!("{base}{page}")).await.unwrap();
        text_of(c, "h1").await;
        walk_by_keyboard(c, page).await;
        assert_eq!(console_errors(c).await, Vec::<String>::new(), "{page}");
    }
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Sign in").await, "Sign in");
    sign_in(c, &base, "ada", "ada password 1234").await;
    wait_for_url(c, "/audit").await;
    text_of(c, "h1").await;
    walk_by_keyboard(c, "/audit").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new(), "/audit");
    browser.close().await;
}
