//! Headless Chromium through chromedriver (both from Debian), driven with fantoccini.

use fantoccini::{Client, ClientBuilder, Locator};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    driver: Child,
    pub client: Client,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl Browser {
    pub async fn launch() -> Browser {
        Browser::launch_with(&[]).await
    }

    /// A browser with more Chromium switches (a fake microphone playing a file, for one).
    pub async fn launch_with(extra: &[String]) -> Browser {
        if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
            crate::missing_peer("chromium and chromium-driver (apt-get install chromium chromium-driver)");
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.extend(extra.iter().cloned());
        let caps = serde_json::json!({
            "browserName": "chrome",
            // What the pages log (errors, CSP violations), for `console_errors`.
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": args,
            }
        });
        let serde_json::Value::Object(caps) = caps else { unreachable!() };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot start a Chromium session: {e}"),
            }
        };
        Browser { driver, client, _profile: profile }
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}

/// The console's pages, for suites that visit each.
pub const ADMIN_PAGES: [&str; 11] = [
    "/admin/users",
    "/admin/groups",
    "/admin/sso",
    "/admin/models",
    "/admin/providers",
    "/admin/assistants",
    "/admin/usage",
    "/admin/quotas",
    "/admin/theme",
    "/admin/status",
    "/account",
];

// Page helpers shared by the browser suites. Each waits (at most 20 seconds) rather than sleeps.

pub async fn text_of(c: &Client, css: &str) -> String {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .unwrap_or_default()
}

/// The text of `css` once it contains `want` (a click's navigation may still be on its way),
/// or whatever it holds after 20 seconds, for the assertion to show.
pub async fn text_when(c: &Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = match c.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) || std::time::Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the browser has navigated to a URL containing `part`.
pub async fn wait_for_url(c: &Client, part: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = c.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        if url.contains(part) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "never reached a URL with {part}: {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn fill(c: &Client, css: &str, value: &str) {
    let field = c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
    field.clear().await.ok();
    field.send_keys(value).await.unwrap();
}

/// With `AYUSH_SCREENSHOTS=DIR`, keeps a picture of each step for people to look at.
pub async fn snap(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("AYUSH_SCREENSHOTS") {
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }
}

pub async fn sign_in(c: &Client, base: &str, user: &str, password: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#username", user).await;
    fill(c, "#password", password).await;
    c.find(Locator::Css("form[action='/login'] button[type=submit]")).await.unwrap().click().await.unwrap();
}

/// ChromeDriver's log of the page's console since the last ask.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

/// What the axe-core engine (tests/axe, installed by `.ci/peers`) finds serious or critical on
/// the open page, one line per rule with the elements it names.
pub async fn axe_violations(c: &Client) -> Vec<String> {
    let engine =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("axe/node_modules/axe-core/axe.min.js");
    let source = std::fs::read_to_string(&engine)
        .unwrap_or_else(|_| crate::missing_peer("axe-core (cd tests/axe && npm ci)"));
    c.execute(&format!("{source}\nreturn true;"), vec![]).await.expect("axe-core loads in the page");
    let found = c
        .execute_async(
            "const done = arguments[0]; axe.run(document, {resultTypes: ['violations']}).then(r => done(\
               r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')\
                 .map(v => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)));",
            vec![],
        )
        .await
        .expect("axe-core runs");
    found.as_array().into_iter().flatten().map(|v| v.as_str().unwrap_or_default().to_string()).collect()
}

/// A Chrome DevTools Protocol command through chromedriver.
#[derive(Debug)]
struct Cdp(String);

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(&self, base: &url::Url, session: Option<&str>) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/goog/cdp/execute", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(self.0.clone()))
    }
}

/// Runs a DevTools command (`Page.getInstallabilityErrors`, say) and returns its result.
pub async fn devtools(c: &Client, command: &str, params: serde_json::Value) -> serde_json::Value {
    let body = serde_json::json!({"cmd": command, "params": params}).to_string();
    c.issue_cmd(Cdp(body)).await.unwrap_or_else(|e| panic!("{command}: {e}"))
}

/// The errors the pages wrote to the console (a failed script, a refused resource, a CSP
/// violation) since the last call.
pub async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser's console log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Checks the page by keyboard: Tab, pressed from the top, reaches every control a person can
/// see (links, buttons, fields, open disclosures), and each shows where the focus is (an
/// outline or a ring). Panics naming the controls missed or unmarked.
pub async fn walk_by_keyboard(c: &Client, page: &str) {
    use fantoccini::actions::{InputSource, KeyAction, KeyActions};
    use fantoccini::key::Key;
    let count = c
        .execute(
            r#"
            const all = [...document.querySelectorAll(
              'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]')];
            window.__controls = all.filter(e => !e.disabled && e.tabIndex >= 0
              && e.checkVisibility({visibilityProperty: true}));
            window.__seen = new Set();
            window.__unmarked = [];
            document.addEventListener('focusin', (ev) => {
              const e = ev.target;
              window.__seen.add(e);
              const s = getComputedStyle(e);
              if (s.outlineStyle === 'none' && s.boxShadow === 'none') {
                window.__unmarked.push(e.outerHTML.slice(0, 100));
              }
            });
            if (document.activeElement) document.activeElement.blur();
            return window.__controls.length;"#,
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let tab: char = Key::Tab.into();
    let mut keys = KeyActions::new("keyboard".into());
    // More presses than controls: scrollable regions take the focus too, and the walk may
    // start past the first control.
    for _ in 0..2 * count + 10 {
        keys = keys.then(KeyAction::Down { value: tab }).then(KeyAction::Up { value: tab });
    }
    c.perform_actions(keys).await.unwrap();
    let found = c
        .execute(
            "return {missed: window.__controls.filter(e => !window.__seen.has(e)).map(e => e.outerHTML.slice(0, 100)), \
             unmarked: window.__unmarked};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(found["missed"], serde_json::json!([]), "{page}: Tab does not reach these controls");
    assert_eq!(found["unmarked"], serde_json::json!([]), "{page}: these controls hide their focus");
}
