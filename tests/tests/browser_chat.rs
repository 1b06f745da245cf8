//! Chat in the web UI as a person uses it: sign in, pick the model, send a message, watch the
//! reply stream in, press stop, then get a full reply.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::browser::Browser;
use ayush_tests::{QWEN_FILE, Server, test_model};
use fantoccini::{Client, Locator};
use std::time::Duration;

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
}

async fn snap(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("AYUSH_SCREENSHOTS") {
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), c.screenshot().await.unwrap())
            .unwrap();
    }
}

/// Polls (no sleeps for readiness) until `check` holds, for at most two minutes.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
async fn send_stream_stop_and_answer() {
    let qwen = test_model(QWEN_FILE);
    let server = Server::start();
    server.create_user("lena", "user", "lena password 12");
    let out = server.ctl_local(&["models", "import", qwen.to_str().unwrap(), "--name", "qwen"], None);
    assert!(out.ok, "{}", out.stderr);
    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();

    c.goto(&format!("{base}/login")).await.unwrap();
    c.find(Locator::Css("#username")).await.unwrap().send_keys("lena").await.unwrap();
    c.find(Locator::Css("#password")).await.unwrap().send_keys("lena password 12").await.unwrap();
    c.find(Locator::Css("form[action='/login'] button")).await.unwrap().click().await.unwrap();
    wait_for(c, "a.new-chat").await.click().await.unwrap();

    let picked = wait_for(c, "#model option[selected]").await.text().await.unwrap();
    assert_eq!(picked, "qwen");
    c.find(Locator::Css("#prompt"))
        .await
        .unwrap()
        .send_keys("Write a very long poem about the sea.")
        .await
        .unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();

    // The reply streams in: text appears while the Stop button is still showing.
    until("streamed text", async || {
        let text = match c.find(Locator::Css(".msg.assistant .body")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        text.split_whitespace().count() >= 3
    })
    .await;
    let stop = c.find(Locator::Css("#stop")).await.unwrap();
    assert!(stop.is_displayed().await.unwrap(), "Stop shows while the reply streams");
    snap(c, "chat-streaming").await;
    stop.click().await.unwrap();
    assert_eq!(wait_for(c, ".msg.assistant .note").await.text().await.unwrap(), "Stopped.");
    until("the composer to come back", async || {
        c.find(Locator::Css("#send")).await.unwrap().is_enabled().await.unwrap()
    })
    .await;

    // The stopped reply was kept; a new question gets a whole answer.
    c.find(Locator::Css("#prompt"))
        .await
        .unwrap()
        .send_keys("What is the capital of France? One word.")
        .await
        .unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    until("the second reply", async || {
        let bodies = c.find_all(Locator::Css(".msg.assistant .body")).await.unwrap();
        let done = c.find(Locator::Css("#regenerate")).await.unwrap().is_displayed().await.unwrap();
        bodies.len() == 2 && done
    })
    .await;
    let bodies = c.find_all(Locator::Css(".msg.assistant .body")).await.unwrap();
    let answer = bodies[1].text().await.unwrap();
    assert!(!answer.trim().is_empty());
    snap(c, "chat-answered").await;

    // Reloading shows the conversation as stored, in the sidebar too.
    c.refresh().await.unwrap();
    assert_eq!(c.find_all(Locator::Css(".msg")).await.unwrap().len(), 4);
    let listed = wait_for(c, "ul.conversations a[aria-current=page]").await.text().await.unwrap();
    assert!(listed.contains("poem about the sea"), "{listed}");
    browser.close().await;
}
