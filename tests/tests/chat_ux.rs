//! The chat as people use it every day, in Chromium at desktop, tablet and phone sizes: no page
//! wider than the screen, the sidebar as a drawer on a phone with touch targets of 44 px, a
//! title written after the first answer and the list updated without a reload, pinning and
//! grouping by day, each answer's footer (tokens, time to first text, duration), keyboard
//! shortcuts, and a person's own light or dark.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use ayush_tests::browser::{Browser, console_errors, sign_in, snap, text_of, text_when, wait_for_url};
use ayush_tests::upstream::{KEY, Upstream};
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use serde_json::Value;
use std::time::Duration;

const PHONE: (u32, u32) = (390, 844);
const NARROW: (u32, u32) = (360, 740);
const TABLET: (u32, u32) = (768, 1024);
const DESKTOP: (u32, u32) = (1280, 900);

async fn size(c: &Client, (w, h): (u32, u32)) {
    c.set_window_size(w, h).await.unwrap();
}

/// A page's path as part of a screenshot's name: `/admin/users` as `admin-users`.
fn slug(page: &str) -> String {
    match page.trim_matches('/') {
        "" => "home".into(),
        path => path.replace('/', "-"),
    }
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// How tall the phone's top bar is (0 where there is none).
async fn top_bar_height(c: &Client) -> f64 {
    js(c, "return document.querySelector('.topbar')?.getBoundingClientRect().height ?? 0")
        .await
        .as_f64()
        .unwrap()
}

/// How much wider than the window the page is (0 when it fits).
async fn overflow(c: &Client) -> i64 {
    js(c, "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await
        .as_i64()
        .unwrap()
}

/// The visible controls shorter than 44 px a finger has to hit.
async fn small_targets(c: &Client) -> Vec<String> {
    let found = js(
        c,
        r#"return [...document.querySelectorAll('button, select, nav a, .topbar a, .account-links a, .composer textarea, summary')]
             .filter(e => e.checkVisibility({visibilityProperty: true}))
             .filter(e => e.getBoundingClientRect().height < 43.5)
             .map(e => `${e.tagName.toLowerCase()} "${(e.textContent || e.id).trim().slice(0, 30)}" ${Math.round(e.getBoundingClientRect().height)}px`)"#,
    )
    .await;
    found.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn value_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css)).await.unwrap().prop("value").await.unwrap().unwrap_or_default()
}

/// A server with root (an admin), amira (a user) and the fake vendor's echo model as `up/echo`
/// (and `up/long`, whose answers stop at their length limit).
async fn with_echo_model(upstream: &Upstream) -> Server {
    let base_url = format!("{}/v1", upstream.url());
    tokio::task::spawn_blocking(move || {
        let server = Server::start();
        server.create_user("root", "admin", "root password 1");
        server.create_user("amira", "user", "amira password 1");
        let admin = server.token_for("root");
        let add =
            ["providers", "add", "up", "--kind", "openai", "--base-url", &base_url, "--model", "echo,long"];
        let out = server.ctl_remote(&admin, &[&add[..], &["--api-key-stdin"]].concat(), Some(KEY));
        assert!(out.ok, "{}", out.stderr);
        server
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn the_chat_fits_every_screen_titles_itself_and_answers_with_its_figures() {
    let upstream = Upstream::start(2);
    let server = with_echo_model(&upstream).await;
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    size(c, DESKTOP).await;
    sign_in(c, &base, "amira", "amira password 1").await;
    text_of(c, "a.new-chat").await;
    c.goto(&format!("{base}/chat")).await.unwrap();
    c.find(Locator::Css("#model option[value='up/echo']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("Plan the team offsite in May").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant[data-id] .body", "Echo: Plan the team offsite in May").await;

    // The answer's footer: tokens in and out, time to first text, duration.
    let footer = text_of(c, ".msg.assistant[data-id] .msg-footer").await;
    assert!(
        footer.contains("7 tokens in") && footer.contains("out") && footer.contains("first text after"),
        "{footer}"
    );

    // A title written by the model (here the fake's echo of the title prompt), shown in the
    // page and in the sidebar without a reload.
    until("a written title", async || value_of(c, "#chat-title").await.starts_with("Echo: The conversation"))
        .await;
    let title = value_of(c, "#chat-title").await;
    until("the chat in the sidebar", async || {
        text_when(c, "#conversation-list", "Echo: The conversation").await.contains("Echo: The conversation")
    })
    .await;
    assert_eq!(text_of(c, "#conversation-list .chat-group").await, "Today");
    assert!(title.len() <= 81, "{title}");

    // Pinned, it heads the list under "Pinned"; the server keeps it so.
    c.find(Locator::Css("#pin-chat")).await.unwrap().click().await.unwrap();
    until("the pinned group", async || text_when(c, "#conversation-list", "Pinned").await.contains("Pinned"))
        .await;
    assert_eq!(
        c.find(Locator::Css("#pin-chat")).await.unwrap().attr("aria-pressed").await.unwrap().as_deref(),
        Some("true")
    );
    c.refresh().await.unwrap();
    assert_eq!(text_of(c, "#conversation-list .chat-group").await, "Pinned");
    assert_eq!(text_of(c, "#pin-chat").await, "Unpin");

    // Regenerate under an earlier answer: asked first, it answers that question again and
    // what came after goes.
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("And in June?").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant:last-child .body", "Echo: And in June?").await;
    until("four messages", async || {
        js(c, "return document.querySelectorAll('#messages > .msg[data-id]').length").await == 4
    })
    .await;
    c.find(Locator::Css(".msg.assistant .regenerate-answer")).await.unwrap().click().await.unwrap();
    c.accept_alert().await.unwrap();
    until("the first answer again, and nothing after", async || {
        js(c, "return [...document.querySelectorAll('#messages > .msg')].map(m => m.dataset.id ? m.querySelector('.body').textContent.trim() : '').join('|')").await
            == Value::String("Plan the team offsite in May|Echo: Plan the team offsite in May".into())
    })
    .await;

    // Math in an answer is typeset (MathML in the math font the server sends), not shown as
    // LaTeX; a wide formula scrolls by itself on a phone.
    c.find(Locator::Css("#prompt"))
        .await
        .unwrap()
        .send_keys(r"Euler: $e^{i\pi} + 1 = 0$ and $$\sum_{n=1}^{\infty} \frac{1}{n^2} = \frac{\pi^2}{6}$$")
        .await
        .unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    until("typeset math", async || {
        js(c, "return document.querySelectorAll('.msg.assistant[data-id] .markdown math').length").await == 2
    })
    .await;
    let font = js(c, "return document.fonts.load('16px \"Latin Modern Math\"').then(f => f.length)").await;
    assert_eq!(font, 1, "the math font loads from the server");
    snap(c, "ux-desktop-math").await;
    size(c, PHONE).await;
    assert_eq!(overflow(c).await, 0, "formulas fit a phone");
    js(c, "document.querySelector('#messages > .msg:last-child').scrollIntoView({block: 'center'})").await;
    snap(c, "ux-phone-math").await;
    size(c, DESKTOP).await;

    // An answer cut at its length limit offers Continue, which grows the same answer.
    c.find(Locator::Css("#model option[value='up/long']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("Count for me").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant[data-finish=length] .note", "length limit").await;
    let cut_id = js(c, "return document.querySelector('#messages > .msg:last-child').dataset.id").await;
    c.find(Locator::Css(".msg.assistant:last-child .continue-answer")).await.unwrap().click().await.unwrap();
    until("the answer continued in place", async || {
        js(c, "return document.querySelector('#messages > .msg:last-child .body')?.textContent.trim()").await
            == Value::String((0..16).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "))
    })
    .await;
    assert_eq!(
        js(c, "return document.querySelector('#messages > .msg:last-child').dataset.id").await,
        cut_id
    );
    assert_eq!(js(c, "return document.querySelectorAll('.continue-answer').length").await, 1);
    let footer = text_of(c, ".msg.assistant:last-child .msg-footer").await;
    assert!(footer.contains("14 tokens in") && footer.contains("16 out"), "{footer}");
    snap(c, "ux-desktop-continued").await;
    c.find(Locator::Css("#model option[value='up/echo']")).await.unwrap().click().await.unwrap();

    // Keyboard: Shift+Escape to the message box, Ctrl+Shift+O to a new chat.
    c.find(Locator::Css("#chat-title")).await.unwrap().click().await.unwrap();
    c.active_element().await.unwrap().send_keys(&format!("{}{}", Key::Shift, Key::Escape)).await.unwrap();
    assert_eq!(c.active_element().await.unwrap().attr("id").await.unwrap().as_deref(), Some("prompt"));
    c.active_element().await.unwrap().send_keys(&format!("{}{}o", Key::Control, Key::Shift)).await.unwrap();
    until("a new chat", async || c.current_url().await.unwrap().as_str().ends_with("/chat")).await;
    snap(c, "ux-desktop-chat").await;

    // Every page the person sees fits a 360 px phone, a tablet and the desktop.
    for (name, (w, h)) in [("narrow", NARROW), ("tablet", TABLET), ("desktop", DESKTOP)] {
        size(c, (w, h)).await;
        for page in ["/chat", "/", "/search", "/collections", "/account", "/keys"] {
            c.goto(&format!("{base}{page}")).await.unwrap();
            assert_eq!(overflow(c).await, 0, "{page} is wider than {w} px");
            assert!(top_bar_height(c).await <= 60.0, "{page}'s top bar at {w} px");
            snap(c, &format!("ux-{name}-{}", slug(page))).await;
        }
    }

    // On a phone the sidebar is a drawer: Menu opens it, Escape closes it; what a finger
    // presses is at least 44 px tall.
    size(c, PHONE).await;
    c.goto(&format!("{base}/chat?c=1")).await.unwrap();
    assert_eq!(overflow(c).await, 0);
    let sidebar_shown = async || {
        js(c, "return document.getElementById('sidebar').checkVisibility({visibilityProperty: true}) && document.getElementById('sidebar').getBoundingClientRect().left >= 0").await == Value::Bool(true)
    };
    assert!(!sidebar_shown().await, "the sidebar starts closed on a phone");
    assert_eq!(small_targets(c).await, Vec::<String>::new());
    snap(c, "ux-phone-chat").await;
    c.find(Locator::Css(".menu-button")).await.unwrap().click().await.unwrap();
    until("the drawer to open", async || sidebar_shown().await).await;
    assert_eq!(
        c.find(Locator::Css(".menu-button")).await.unwrap().attr("aria-expanded").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(small_targets(c).await, Vec::<String>::new());
    snap(c, "ux-phone-drawer").await;
    c.active_element().await.unwrap().send_keys(&Key::Escape.to_string()).await.unwrap();
    until("the drawer to close", async || !sidebar_shown().await).await;

    // The same chat on the phone: a question asked, answered with its footer and controls,
    // and titled in the drawer's list; nothing wider than the screen, nothing too small.
    c.find(Locator::Css("a.menu-new-chat")).await.unwrap().click().await.unwrap();
    until("a new chat", async || c.current_url().await.unwrap().as_str().ends_with("/chat")).await;
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("Book the rooms").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant[data-id] .body", "Echo: Book the rooms").await;
    assert!(text_of(c, ".msg.assistant[data-id] .msg-footer").await.contains("tokens in"));
    until("a written title", async || value_of(c, "#chat-title").await.starts_with("Echo: The conversation"))
        .await;
    assert_eq!(overflow(c).await, 0);
    assert_eq!(small_targets(c).await, Vec::<String>::new());
    snap(c, "ux-phone-answer").await;
    // The controls under an answer come in the same order when the page is loaded again.
    let controls = "return [...document.querySelectorAll('#messages > .msg:last-child button')].map(b => b.textContent).join('|')";
    let arrived = js(c, controls).await;
    assert_eq!(arrived, "Copy answer|Regenerate");
    c.refresh().await.unwrap();
    text_of(c, ".msg.assistant .copy-answer").await;
    assert_eq!(js(c, controls).await, arrived);
    c.find(Locator::Css(".menu-button")).await.unwrap().click().await.unwrap();
    until("the drawer to open", async || sidebar_shown().await).await;
    until("two titled chats in the list", async || {
        text_when(c, "#conversation-list", "Echo: The conversation")
            .await
            .matches("Echo: The conversation")
            .count()
            == 2
    })
    .await;
    c.active_element().await.unwrap().send_keys(&Key::Escape.to_string()).await.unwrap();
    until("the drawer to close", async || !sidebar_shown().await).await;

    // A person's own dark mode, kept on the server for every page and device.
    size(c, DESKTOP).await;
    c.goto(&format!("{base}/account")).await.unwrap();
    c.find(Locator::Css("#color-mode option[value=dark]")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("form.appearance button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_for_url(c, "/account?done=appearance").await;
    assert_eq!(js(c, "return document.documentElement.dataset.mode").await, "dark");
    c.goto(&format!("{base}/chat")).await.unwrap();
    assert_eq!(js(c, "return getComputedStyle(document.body).backgroundColor").await, "rgb(18, 21, 29)");
    snap(c, "ux-desktop-dark").await;
    size(c, PHONE).await;
    c.goto(&format!("{base}/chat?c=1")).await.unwrap();
    assert_eq!(js(c, "return document.documentElement.dataset.mode").await, "dark");
    snap(c, "ux-phone-dark").await;
    size(c, DESKTOP).await;
    assert_eq!(server.audit_events("user.color_mode", Some("success")).len(), 1);
    assert_eq!(console_errors(c).await, Vec::<String>::new());

    // An admin's console fits a phone too; each page is kept at both sizes.
    browser.close().await;
    let browser = Browser::launch().await;
    let c = &browser.client;
    size(c, NARROW).await;
    sign_in(c, &base, "root", "root password 1").await;
    text_of(c, ".account strong").await;
    for (name, (w, h)) in [("narrow", NARROW), ("desktop", DESKTOP)] {
        size(c, (w, h)).await;
        for page in ayush_tests::browser::ADMIN_PAGES {
            c.goto(&format!("{base}{page}")).await.unwrap();
            assert_eq!(overflow(c).await, 0, "{page} is wider than {w} px");
            assert!(top_bar_height(c).await <= 60.0, "{page}'s top bar at {w} px");
            snap(c, &format!("ux-{name}-admin-{}", slug(page).trim_start_matches("admin-"))).await;
        }
    }
    browser.close().await;
}

/// The app installs (Chromium finds nothing against it), its manifest and icons come from the
/// theme, its service worker keeps the shell and nothing else, and with the server gone it
/// still opens and says it is offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn the_app_installs_and_keeps_only_its_shell() {
    use ayush_tests::browser::devtools;
    let server = tokio::task::spawn_blocking(|| {
        let server = Server::start_with_config(
            "[theme]\nproduct_name = \"Acme Assist\"\nprimary_color = \"#c2255c\"\n",
        );
        server.create_user("amira", "user", "amira password 1");
        server
    })
    .await
    .unwrap();
    let base = server.url.clone();
    let mut client = server.client();
    let manifest = client.get("/manifest.webmanifest").json();
    assert_eq!(
        (manifest["name"].as_str(), manifest["theme_color"].as_str()),
        (Some("Acme Assist"), Some("#c2255c"))
    );
    assert_eq!(manifest["display"], "standalone");
    for icon in manifest["icons"].as_array().unwrap() {
        let png = client.get(icon["src"].as_str().unwrap());
        assert_eq!(png.header("content-type"), Some("image/png"));
        let reader = png::Decoder::new(std::io::Cursor::new(png.bytes)).read_info().unwrap();
        let size = format!("{}x{}", reader.info().width, reader.info().height);
        assert_eq!(icon["sizes"].as_str(), Some(size.as_str()));
    }

    let browser = Browser::launch().await;
    let c = &browser.client;
    sign_in(c, &base, "amira", "amira password 1").await;
    text_of(c, "a.new-chat").await;
    c.goto(&format!("{base}/chat")).await.unwrap();
    let scope = c
        .execute_async(
            "const done = arguments[0]; navigator.serviceWorker.ready.then(r => done(r.scope));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(scope.as_str(), Some(format!("{base}/").as_str()));
    let installable = devtools(c, "Page.getInstallabilityErrors", serde_json::json!({})).await;
    assert_eq!(installable["installabilityErrors"], serde_json::json!([]), "{installable}");

    // Pages and answers are never kept; the shell is.
    c.goto(&format!("{base}/account")).await.unwrap();
    c.goto(&format!("{base}/chat")).await.unwrap();
    let kept = c
        .execute_async(
            "const done = arguments[0]; (async () => { const out = []; for (const k of await caches.keys()) { \
               for (const r of await (await caches.open(k)).keys()) out.push(new URL(r.url).pathname); } done(out); })();",
            vec![],
        )
        .await
        .unwrap();
    let kept: Vec<&str> = kept.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(kept.contains(&"/static/app.css") && kept.contains(&"/static/js/chat.js"), "{kept:?}");
    assert!(kept.iter().all(|p| p.starts_with("/static/") || p.starts_with("/theme")), "{kept:?}");

    // The server gone, the app still opens, styled, and says so.
    let _stopped = tokio::task::spawn_blocking(move || {
        let mut server = server;
        server.kill();
        server
    })
    .await
    .unwrap();
    c.goto(&format!("{base}/chat")).await.unwrap();
    assert_eq!(text_of(c, "h1").await, "You are offline");
    snap(c, "ux-offline").await;
    browser.close().await;
}

/// The axe-core engine finds nothing serious or critical on the sign-in, chat, search,
/// collections and audit pages, at desktop and phone sizes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
#[cfg_attr(not(peer_axe), ignore = "needs axe-core: run .ci/peers")]
async fn the_accessibility_engine_finds_nothing_serious() {
    use ayush_tests::browser::axe_violations;
    let upstream = Upstream::start(2);
    let server = with_echo_model(&upstream).await;
    server.create_user("ines", "auditor", "ines password 1");
    assert!(server.ctl_local(&["collections", "create", "handbook"], None).ok);
    let base = server.url.clone();
    let mut found = Vec::new();
    let browser = Browser::launch().await;
    let c = &browser.client;
    for (label, dims) in [("desktop", DESKTOP), ("phone", PHONE)] {
        size(c, dims).await;
        c.goto(&format!("{base}/login")).await.unwrap();
        found.extend(axe_violations(c).await.into_iter().map(|v| format!("{label} /login: {v}")));
    }
    size(c, DESKTOP).await;
    sign_in(c, &base, "amira", "amira password 1").await;
    text_of(c, "a.new-chat").await;
    c.goto(&format!("{base}/chat")).await.unwrap();
    c.find(Locator::Css("#model option[value='up/echo']")).await.unwrap().click().await.unwrap();
    // The echo model answers with what it is sent: a table and code in Python.
    let markdown = "Rooms:\n\n| Day | Room |\n| --- | --- |\n| Monday | 2.14 |\n\n```python\ndef greet(name):\n    # a comment\n    return f\"Hi {name}\" * 2\n```\n";
    c.execute(
        "document.getElementById('prompt').value = arguments[0];",
        vec![Value::String(markdown.into())],
    )
    .await
    .unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant[data-id] .body", "Monday").await;
    // Code is coloured by its language, on the server.
    let coloured = js(c, "return [...document.querySelectorAll('.msg.assistant pre code.language-python span')].map(s => s.className).join(' ')").await;
    let coloured = coloured.as_str().unwrap();
    assert!(coloured.contains("hl-keyword") || coloured.contains("hl-storage"), "{coloured}");
    assert!(coloured.contains("hl-string") && coloured.contains("hl-comment"), "{coloured}");
    js(c, "document.querySelector('.msg.assistant pre').scrollIntoView(); return true").await;
    snap(c, "ux-desktop-code").await;
    let body = js(c, "return document.querySelector('.msg.assistant .body').innerHTML").await;
    assert_eq!(
        js(c, "return document.querySelectorAll('.msg.assistant table td').length").await,
        2,
        "{body}"
    );
    for (label, dims) in [("desktop", DESKTOP), ("phone", PHONE)] {
        size(c, dims).await;
        for page in ["/chat?c=1", "/search?q=leave", "/collections", "/account"] {
            c.goto(&format!("{base}{page}")).await.unwrap();
            found.extend(axe_violations(c).await.into_iter().map(|v| format!("{label} {page}: {v}")));
            let name: String = page.chars().filter(char::is_ascii_alphanumeric).take(12).collect();
            snap(c, &format!("axe-{label}-{name}")).await;
        }
    }
    browser.close().await;
    let browser = Browser::launch().await;
    let c = &browser.client;
    sign_in(c, &base, "ines", "ines password 1").await;
    text_of(c, "h1").await;
    for (label, dims) in [("desktop", DESKTOP), ("phone", PHONE)] {
        size(c, dims).await;
        c.goto(&format!("{base}/audit")).await.unwrap();
        found.extend(axe_violations(c).await.into_iter().map(|v| format!("{label} /audit: {v}")));
        snap(c, &format!("axe-{label}-audit")).await;
    }
    browser.close().await;
    assert_eq!(found, Vec::<String>::new());
}
