//! OpenID Connect sign-in against the real `oidc-provider` (npm, OpenID Certified) on loopback:
//! a full browser sign-in through the provider's login and consent pages, its groups claim
//! mapped to the admin role, the local form hidden except on the break-glass path, RP-initiated
//! logout, and a replayed answer refused and recorded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::Server;
use ayush_tests::browser::{Browser, fill, snap, text_of, text_when, wait_for_url};
use ayush_tests::idp::{self, Idp};
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_the_provider_with_groups_mapped_to_roles() {
    let port = idp::free_port();
    let server = Server::start_with_config(&Idp::config(port, "corp", false));
    server.create_user("root", "admin", "break glass pw 1");
    assert!(server.ctl_local(&["sso", "map", "ayush-admins", "--role", "admin"], None).ok);
    let Some(_idp) = Idp::start(port, &server.url, "corp") else { return };
    let Some(browser) = Browser::launch().await else { return };
    let c = &browser.client;
    let base = server.url.clone();

    c.goto(&format!("{base}/login")).await.unwrap();
    let button = text_of(c, "a.sso[data-provider=corp]").await;
    assert_eq!(button, "Sign in with Corp SSO");
    assert!(c.find(Locator::Css("#password")).await.is_err(), "the local form is hidden");
    snap(c, "oidc-login").await;
    c.find(Locator::Css("a.sso[data-provider=corp]")).await.unwrap().click().await.unwrap();

    // The provider's own pages: its login form, then consent.
    wait_for_url(c, &format!("127.0.0.1:{port}/interaction/")).await;
    fill(c, "input[name=login]", "alice").await;
    fill(c, "input[name=password]", "anything").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    let consent = text_when(c, "button[type=submit]", "Continue").await;
    assert!(consent.contains("Continue"), "{consent}");
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();

    // Back at Ayush, signed in as alice, an admin through the ayush-admins group.
    assert!(text_when(c, "h1", "Welcome").await.contains("Alice Example"));
    let nav = text_of(c, "nav").await;
    assert!(nav.contains("Users"), "the groups claim made alice an admin: {nav}");
    snap(c, "oidc-signed-in").await;

    // Signing out continues at the provider (RP-initiated logout).
    c.find(Locator::Css("form[action='/logout'] button")).await.unwrap().click().await.unwrap();
    wait_for_url(c, &format!("127.0.0.1:{port}/session/end")).await;

    // The break-glass path shows the local form.
    c.goto(&format!("{base}/login?local=1")).await.unwrap();
    assert!(c.find(Locator::Css("#password")).await.is_ok());
    browser.close().await;

    let store = server.open_store();
    let filter =
        ayush_server::audit::query::Filter { action: Some("auth.login".into()), ..Default::default() };
    let events =
        store.run_blocking(|c| ayush_server::audit::query::page(c, &filter.check()?, None, 20)).unwrap();
    let ok = events
        .iter()
        .find(|e| e.outcome == "success" && e.target_id.as_deref() == Some("alice"))
        .expect("alice's sign-in");
    assert!(
        ok.details.contains("\"source\":\"oidc:corp\"") && ok.details.contains("ayush-admins"),
        "{}",
        ok.details
    );
    let me = store.run_blocking(|c| ayush_server::auth::users::get(c, "alice")).unwrap();
    assert_eq!((me.auth_source.as_str(), me.role.as_str()), ("oidc:corp", "admin"));

    // An answer whose state is unknown (replayed, or forged) is refused and recorded.
    let r = server.client().get("/auth/oidc/corp/callback?code=abc&state=not-a-state-we-issued");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("expired or was already used"), "{}", r.body);
    let events =
        store.run_blocking(|c| ayush_server::audit::query::page(c, &filter.check()?, None, 20)).unwrap();
    assert!(events.iter().any(|e| e.details.contains("state_unknown_or_replayed")));
}
