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

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn the_chat_fits_every_screen_titles_itself_and_answers_with_its_figures() {
    let upstream = Upstream::start(2);
    let base_url = format!("{}/v1", upstream.url());
    let server = tokio::task::spawn_blocking(move || {
        let server = Server::start();
        server.create_user("root", "admin", "root password 1");
        server.create_user("amira", "user", "amira password 1");
        let admin = server.token_for("root");
        let out = server.ctl_remote(
            &admin,
            &[
                "providers",
                "add",
                "up",
                "--kind",
                "openai",
                "--base-url",
                &base_url,
                "--model",
                "echo",
                "--api-key-stdin",
            ],
            Some(KEY),
        );
        assert!(out.ok, "{}", out.stderr);
        server
    })
    .await
    .unwrap();
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
        }
        c.goto(&format!("{base}/chat")).await.unwrap();
        snap(c, &format!("ux-{name}-chat")).await;
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
    assert_eq!(server.audit_events("user.color_mode", Some("success")).len(), 1);
    assert_eq!(console_errors(c).await, Vec::<String>::new());

    // An admin's console fits a phone too.
    browser.close().await;
    let browser = Browser::launch().await;
    let c = &browser.client;
    size(c, NARROW).await;
    sign_in(c, &base, "root", "root password 1").await;
    text_of(c, ".account strong").await;
    for page in ayush_tests::browser::ADMIN_PAGES {
        c.goto(&format!("{base}{page}")).await.unwrap();
        assert_eq!(overflow(c).await, 0, "{page} is wider than 360 px");
    }
    snap(c, "ux-narrow-admin-providers").await;
    browser.close().await;
}
