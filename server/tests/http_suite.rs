//! The app driven in-process (`build_app` on a fresh data directory, SQLite) with a manual
//! clock: what depends on time passing — sessions expiring, lockouts lifting, API keys running
//! out, retention pruning — is checked by moving the clock, not by sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)] // the tests fail by panicking

use actix_web::http::StatusCode;
use actix_web::test::{self, TestRequest};
use ayush_server::audit::Actor;
use ayush_server::auth::Role;
use ayush_server::auth::accounts::NewAccount;
use ayush_server::clock::{ManualClock, SharedClock};
use ayush_server::config::{Config, Overrides};
use ayush_server::state::AppState;
use serde_json::json;
use std::sync::Arc;

const T0: i64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery";

/// A state on a fresh data directory whose clock the test moves, with the account `sam`.
async fn installation(env: &[(&str, &str)]) -> (AppState, Arc<ManualClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let overrides = Overrides { data_dir: Some(dir.path().to_path_buf()), ..Default::default() };
    let config = Config::load(None, env, &overrides).unwrap();
    let clock = ManualClock::at(T0);
    let shared: SharedClock = clock.clone();
    let state = ayush_server::serve::open_state(config, shared).unwrap();
    state.accounts.create(Actor::local_cli(), sam_like()).await.unwrap();
    (state, clock, dir)
}

fn sam_like() -> NewAccount {
    NewAccount {
        username: "sam".into(),
        role: Role::User,
        display_name: "Sam".into(),
        password: Some(PASSWORD.into()),
        email: None,
        kind: Default::default(),
    }
}

fn login(password: &str) -> TestRequest {
    TestRequest::post().uri("/api/auth/login").set_json(json!({"username": "sam", "password": password}))
}

#[actix_web::test]
async fn a_session_ends_after_the_idle_timeout_and_activity_keeps_it() {
    let (state, clock, _dir) = installation(&[("AYUSH_AUTH__SESSION_IDLE_TIMEOUT_MINS", "30")]).await;
    let app = test::init_service(ayush_server::http::build_app(state)).await;
    let signed = test::call_service(&app, login(PASSWORD).to_request()).await;
    assert_eq!(signed.status(), StatusCode::OK);
    let cookie = signed.response().cookies().find(|c| c.name() == "ayush_session").unwrap().into_owned();
    let me = || TestRequest::get().uri("/api/me").cookie(cookie.clone()).to_request();

    clock.advance(29 * 60);
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::OK, "used within the timeout");
    clock.advance(29 * 60);
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::OK, "activity renewed it");
    clock.advance(31 * 60);
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::UNAUTHORIZED, "idle too long");
}

#[actix_web::test]
async fn a_lockout_refuses_even_the_right_password_until_its_window_passes() {
    let (state, clock, _dir) =
        installation(&[("AYUSH_AUTH__LOCKOUT_MAX_FAILURES", "3"), ("AYUSH_AUTH__LOCKOUT_WINDOW_MINS", "10")])
            .await;
    let app = test::init_service(ayush_server::http::build_app(state)).await;
    for _ in 0..3 {
        let wrong = test::call_service(&app, login("not the password").to_request()).await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    let locked = test::call_service(&app, login(PASSWORD).to_request()).await;
    assert_eq!(locked.status(), StatusCode::TOO_MANY_REQUESTS, "locked out");
    clock.advance(9 * 60);
    let still = test::call_service(&app, login(PASSWORD).to_request()).await;
    assert_eq!(still.status(), StatusCode::TOO_MANY_REQUESTS, "still inside the window");
    clock.advance(2 * 60);
    let open = test::call_service(&app, login(PASSWORD).to_request()).await;
    assert_eq!(open.status(), StatusCode::OK, "the window has passed");
}

#[actix_web::test]
async fn an_api_key_stops_working_when_it_expires() {
    let (state, clock, _dir) = installation(&[]).await;
    let app = test::init_service(ayush_server::http::build_app(state)).await;
    // A person makes their own keys, signed in.
    let signed = test::call_service(&app, login(PASSWORD).to_request()).await;
    let cookie = signed.response().cookies().find(|c| c.name() == "ayush_session").unwrap().into_owned();
    let page =
        test::call_service(&app, TestRequest::get().uri("/keys").cookie(cookie.clone()).to_request()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let cache = page.headers().get("cache-control").and_then(|v| v.to_str().ok());
    assert_eq!(cache, Some("no-store"), "the keys page, which shows a new key once, is never cached");
    let make = TestRequest::post()
        .uri("/api/keys")
        .cookie(cookie)
        .set_json(json!({"name": "ci", "expires_days": 1}))
        .to_request();
    let made: serde_json::Value = test::call_and_read_body_json(&app, make).await;
    let secret = made["secret"].as_str().expect("a secret").to_string();
    let me = || {
        TestRequest::get()
            .uri("/api/me")
            .insert_header(("Authorization", format!("Bearer {secret}")))
            .to_request()
    };
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::OK);
    clock.advance(86_400 - 1);
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::OK, "a second before expiry");
    clock.advance(1);
    assert_eq!(test::call_service(&app, me()).await.status(), StatusCode::UNAUTHORIZED, "expired");
}

#[actix_web::test]
async fn retention_prunes_only_what_is_old_enough_and_spares_held_accounts() {
    let (state, clock, _dir) = installation(&[("AYUSH_AUDIT__RETENTION_DAYS", "30")]).await;
    let log = state.audit_log.clone();
    let auditor = Actor::local_cli();
    let ola = NewAccount { username: "ola".into(), password: None, ..sam_like() };
    state.accounts.create(auditor.clone(), ola).await.unwrap();
    assert!(log.prune(auditor.clone(), None).await.unwrap().is_none(), "nothing is 30 days old yet");

    log.hold(auditor.clone(), "sam".into(), "litigation".into()).await.unwrap();
    clock.advance(31 * 86_400);
    let pruned = log.prune(auditor.clone(), None).await.unwrap().expect("old events pruned");
    assert!(pruned.pruned > 0, "{pruned:?}");
    let events = log
        .events(&Default::default(), ayush_server::audit::log::Paging { limit: 500, ..Default::default() })
        .await
        .unwrap();
    let created =
        |name: &str| events.iter().any(|e| e.action == "user.create" && e.target_id.as_deref() == Some(name));
    assert!(created("sam"), "the held account's events stay");
    assert!(!created("ola"), "the others' old events are gone");
    let report = log.verify(auditor, None).await.unwrap();
    assert!(report.ok, "the chain still verifies after pruning: {report:?}");
}
