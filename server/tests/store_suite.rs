//! One store suite, run on every backend: SQLite always; PostgreSQL when
//! `AYUSH_TEST_DATABASE_URL` is set (each test gets a fresh database, dropped afterwards).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_server::audit::{self, Actor};
use ayush_server::auth::throttle::Account;
use ayush_server::auth::tokens::Issuer;
use ayush_server::auth::{Role, groups, sessions, throttle, tokens, users};
use ayush_server::clock::{Clock, ManualClock};
use ayush_server::config::{AuthConfig, DatabaseConfig};
use ayush_server::error::ErrorKind;
use ayush_server::store::lease::{self, Duty};
use ayush_server::store::{Conn, Db, Store};
use diesel::sql_query;
use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, RunQueryDsl};
use std::collections::BTreeSet;

mod common;

const T0: i64 = 1_800_000_000;

macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::common::sqlite_db().store) } )*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(not(ayush_test_postgres), ignore = "set AYUSH_TEST_DATABASE_URL to run it on PostgreSQL")]
                fn $name() { super::$name(&super::common::pg_db().store) }
            )*
        }
    };
}

store_suite!(
    migrations_go_down_and_up_again,
    users_are_created_once_and_listed,
    changes_and_their_audit_events_commit_together,
    the_last_admin_is_kept,
    groups_hold_members_and_follow_deleted_users,
    sessions_expire_when_idle_or_old,
    disabling_ends_sessions_and_tokens,
    keys_are_made_by_their_owner_and_never_outlive_their_maker,
    sso_accounts_are_linked_on_purpose_and_lapse_when_unseen,
    api_tokens_resolve_until_revoked_or_expired,
    throttle_locks_an_account_for_the_window,
    a_lease_has_one_holder_until_it_lapses_or_is_given_up,
    usage_reports_break_answers_down_by_each_dimension,
    answers_are_costed_at_their_models_price,
    quotas_refuse_past_a_limit_and_say_when_it_resets,
    a_theme_is_stored_whole_and_its_notice_accepted_once,
);

fn actor() -> Actor {
    Actor { name: "test".into(), method: Some("test".into()), ..Default::default() }
}

fn add_user(c: &mut Conn, name: &str, role: Role) -> users::User {
    let new = users::NewUser::person(name, role, Some("$argon2id$x"));
    users::create(c, T0, &actor(), &new).unwrap()
}

fn migrations_go_down_and_up_again(store: &Store) {
    store.run_blocking(|c| Ok(add_user(c, "before", Role::User))).unwrap();
    store.revert_and_rerun_migrations().unwrap();
    let users = store.run_blocking(users::list).unwrap();
    assert!(users.is_empty(), "down.sql dropped everything and up.sql recreated it");
    store.run_blocking(|c| Ok(add_user(c, "after", Role::User))).unwrap();
}

fn users_are_created_once_and_listed(store: &Store) {
    store
        .run_blocking(|c| {
            let a = add_user(c, "zoe", Role::Admin);
            assert_eq!(a.role, Role::Admin);
            add_user(c, "adam", Role::Auditor);
            let dup = users::create(c, T0, &actor(), &users::NewUser::person("zoe", Role::User, None));
            assert_eq!(dup.unwrap_err().kind, ErrorKind::Conflict);
            let names: Vec<String> = users::list(c)?.into_iter().map(|u| u.username).collect();
            assert_eq!(names, ["adam", "zoe"]);
            assert_eq!(users::get(c, "nobody").unwrap_err().kind, ErrorKind::NotFound);
            let row = users::find_row(c, "zoe")?.unwrap();
            assert_eq!(row.password_hash.as_deref(), Some("$argon2id$x"));
            let u = users::set_display_name(c, T0, &actor(), "zoe", "Zoë Ångström")?;
            assert_eq!(u.display_name, "Zoë Ångström");
            Ok(())
        })
        .unwrap();
}

fn changes_and_their_audit_events_commit_together(store: &Store) {
    store
        .run_blocking(|c| {
            add_user(c, "amy", Role::User);
            let events = audit::recent(c, 10)?;
            assert_eq!(events.len(), 1);
            assert_eq!(
                (events[0].action.as_str(), events[0].target_id.as_deref()),
                ("user.create", Some("amy"))
            );
            // A transaction that fails after writing its event leaves neither.
            let failed: Result<(), ayush_server::error::AppError> = c.transaction(|c| {
                add_user(c, "ben", Role::User);
                Err(ayush_server::error::AppError::conflict("changed my mind"))
            });
            assert!(failed.is_err());
            assert!(users::find_row(c, "ben")?.is_none());
            assert_eq!(audit::recent(c, 10)?.len(), 1);
            Ok(())
        })
        .unwrap();
}

fn the_last_admin_is_kept(store: &Store) {
    store
        .run_blocking(|c| {
            add_user(c, "root", Role::Admin);
            assert_eq!(
                users::set_role(c, T0, &actor(), "root", Role::User).unwrap_err().kind,
                ErrorKind::Conflict
            );
            assert_eq!(
                users::set_disabled(c, T0, &actor(), "root", true).unwrap_err().kind,
                ErrorKind::Conflict
            );
            add_user(c, "second", Role::Admin);
            users::set_disabled(c, T0, &actor(), "root", true)?;
            assert_eq!(
                users::set_role(c, T0, &actor(), "second", Role::User).unwrap_err().kind,
                ErrorKind::Conflict
            );
            Ok(())
        })
        .unwrap();
}

fn groups_hold_members_and_follow_deleted_users(store: &Store) {
    store
        .run_blocking(|c| {
            let u = add_user(c, "gus", Role::User);
            groups::create(c, T0, &actor(), "finance", "money people")?;
            assert_eq!(groups::create(c, T0, &actor(), "finance", "").unwrap_err().kind, ErrorKind::Conflict);
            assert_eq!(groups::create(c, T0, &actor(), " bad", "").unwrap_err().kind, ErrorKind::Validation);
            groups::add_member(c, T0, &actor(), "finance", "gus")?;
            groups::add_member(c, T0, &actor(), "finance", "gus")?; // idempotent
            assert_eq!(groups::of_user(c, u.id)?, ["finance"]);
            assert_eq!(groups::list(c)?[0].members, 1);
            let g = groups::get(c, "finance")?;
            assert_eq!(groups::members(c, &g)?[0].username, "gus");
            groups::remove_member(c, T0, &actor(), "finance", "gus")?;
            assert_eq!(
                groups::remove_member(c, T0, &actor(), "finance", "gus").unwrap_err().kind,
                ErrorKind::NotFound
            );
            groups::add_member(c, T0, &actor(), "finance", "gus")?;
            // Foreign keys cascade on both backends (SQLite needs PRAGMA foreign_keys).
            ayush_server::with_conn!(&mut *c, |c| {
                use diesel::prelude::*;
                diesel::delete(ayush_server::store::schema::users::table.find(u.id)).execute(c)
            })?;
            assert_eq!(groups::list(c)?[0].members, 0);
            groups::delete(c, T0, &actor(), "finance")?;
            assert!(groups::list(c)?.is_empty());
            Ok(())
        })
        .unwrap();
}

fn sessions_expire_when_idle_or_old(store: &Store) {
    let cfg = AuthConfig {
        session_idle_timeout_mins: 30,
        session_absolute_timeout_mins: 120,
        ..Default::default()
    };
    let clock = ManualClock::at(T0);
    store
        .run_blocking(|c| {
            let u = add_user(c, "sam", Role::User);
            let s = sessions::create(c, clock.now(), &cfg, u.id, Some("10.0.0.1"), Some("test"))?;
            assert!(sessions::resolve(c, clock.now(), &cfg, &s.token)?.is_live());
            clock.advance(29 * 60);
            assert!(sessions::resolve(c, clock.now(), &cfg, &s.token)?.is_live(), "activity keeps it alive");
            clock.advance(29 * 60);
            assert!(sessions::resolve(c, clock.now(), &cfg, &s.token)?.is_live());
            clock.advance(30 * 60);
            let idle = sessions::resolve(c, clock.now(), &cfg, &s.token)?.refusal();
            assert_eq!(idle, Some(sessions::Refusal::IdleExpired));
            let again = sessions::resolve(c, clock.now(), &cfg, &s.token)?.refusal();
            assert_eq!(again, Some(sessions::Refusal::Unknown), "the expired session was deleted");

            let s = sessions::create(c, clock.now(), &cfg, u.id, None, None)?;
            for _ in 0..4 {
                clock.advance(25 * 60);
                assert!(sessions::resolve(c, clock.now(), &cfg, &s.token)?.is_live());
            }
            clock.advance(25 * 60);
            let old = sessions::resolve(c, clock.now(), &cfg, &s.token)?.refusal();
            assert_eq!(old, Some(sessions::Refusal::AbsoluteExpired));
            let made_up = sessions::resolve(c, clock.now(), &cfg, "made-up")?.refusal();
            assert_eq!(made_up, Some(sessions::Refusal::Unknown));

            let s = sessions::create(c, clock.now(), &cfg, u.id, None, None)?;
            clock.advance(121 * 60);
            assert_eq!(sessions::purge_expired(c, clock.now())?, 1);
            assert!(!sessions::resolve(c, clock.now(), &cfg, &s.token)?.is_live());
            Ok(())
        })
        .unwrap();
}

fn disabling_ends_sessions_and_tokens(store: &Store) {
    let cfg = AuthConfig::default();
    store
        .run_blocking(|c| {
            add_user(c, "root", Role::Admin);
            let u = add_user(c, "pat", Role::User);
            let pat = Issuer::Session { user_id: u.id, admin: false };
            let s = sessions::create(c, T0, &cfg, u.id, None, None)?;
            let (_, secret) = tokens::create(c, T0, &actor(), pat, "pat", "script", None)?;
            assert!(tokens::resolve(c, T0, &secret)?.is_some());
            users::set_disabled(c, T0, &actor(), "pat", true)?;
            assert_eq!(sessions::count_for_user(c, u.id)?, 0);
            assert!(!sessions::resolve(c, T0, &cfg, &s.token)?.is_live());
            assert!(tokens::resolve(c, T0, &secret)?.is_none());
            users::set_disabled(c, T0, &actor(), "pat", false)?;
            assert!(tokens::resolve(c, T0, &secret)?.is_none(), "a disable revokes keys for good");

            let (_, secret) = tokens::create(c, T0, &actor(), pat, "pat", "script", None)?;
            let s = sessions::create(c, T0, &cfg, u.id, None, None)?;
            users::set_password(c, T0, &actor(), "pat", "$argon2id$new")?;
            assert!(!sessions::resolve(c, T0, &cfg, &s.token)?.is_live(), "a new password ends sessions");
            assert!(tokens::resolve(c, T0, &secret)?.is_none(), "and revokes keys");

            let (_, secret) = tokens::create(c, T0, &actor(), pat, "pat", "script", None)?;
            users::set_role(c, T0, &actor(), "pat", Role::Auditor)?;
            assert!(tokens::resolve(c, T0, &secret)?.is_none(), "a role change revokes keys");
            Ok(())
        })
        .unwrap();
}

/// Finding 7 and 9 of the security review: a person's keys are theirs to make; admins make
/// keys for themselves and service accounts; a key cannot make a key that outlives it.
fn keys_are_made_by_their_owner_and_never_outlive_their_maker(store: &Store) {
    store
        .run_blocking(|c| {
            let root = add_user(c, "keyroot", Role::Admin);
            let ada = add_user(c, "keyada", Role::Auditor);
            let bot = users::create(
                c,
                T0,
                &actor(),
                &users::NewUser {
                    kind: users::Kind::Service,
                    ..users::NewUser::person("keybot", Role::User, None)
                },
            )?;
            assert!(bot.is_service());
            let admin = Issuer::Session { user_id: root.id, admin: true };
            let refused = tokens::create(c, T0, &actor(), admin, "keyada", "peek", None).unwrap_err();
            assert_eq!(refused.kind, ErrorKind::Forbidden, "{}", refused.message);
            assert!(tokens::create(c, T0, &actor(), Issuer::Local, "keyada", "peek", None).is_err());
            let mine = Issuer::Session { user_id: ada.id, admin: false };
            assert!(tokens::create(c, T0, &actor(), mine, "keyada", "mine", None).is_ok());
            assert!(tokens::create(c, T0, &actor(), admin, "keybot", "ci", None).is_ok());
            assert!(tokens::create(c, T0, &actor(), Issuer::Local, "keyroot", "ops", None).is_ok());

            let short = Issuer::Key { user_id: root.id, admin: true, expires_at: Some(T0 + 86_400 * 7) };
            let forever =
                tokens::create_for_days(c, T0, &actor(), short, "keyroot", "child", None).unwrap_err();
            assert_eq!(forever.kind, ErrorKind::Validation, "{}", forever.message);
            let longer =
                tokens::create_for_days(c, T0, &actor(), short, "keyroot", "child", Some(8)).unwrap_err();
            assert!(longer.message.contains("expires_days at most 7"), "{}", longer.message);
            assert!(tokens::create_for_days(c, T0, &actor(), short, "keyroot", "child", Some(7)).is_ok());
            Ok(())
        })
        .unwrap();
}

/// Finding 5 and 9: an identity joins an account only by an admin's link (never one with a
/// local password); accounts from a provider that stop signing in lapse; deprovisioning ends
/// everything at once.
fn sso_accounts_are_linked_on_purpose_and_lapse_when_unseen(store: &Store) {
    store
        .run_blocking(|c| {
            add_user(c, "ssoroot", Role::Admin);
            let nia = users::create(c, T0, &actor(), &users::NewUser::person("nia", Role::User, None))?;
            let err = users::link_identity(c, T0, &actor(), "ssoroot", "oidc:corp", "corp|root").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Conflict, "a break-glass account is never linked");
            users::link_identity(c, T0, &actor(), "nia", "oidc:corp", "corp|nia")?;
            let issuer = Issuer::Session { user_id: nia.id, admin: false };
            let (_, secret) = tokens::create(c, T0, &actor(), issuer, "nia", "script", None)?;

            let day = 86_400;
            assert!(users::disable_inactive_sso(c, T0 + 10 * day, &actor(), T0 - day)?.is_empty());
            users::note_sign_in(c, T0 + 5 * day, nia.id)?;
            let lapsed = users::disable_inactive_sso(c, T0 + 100 * day, &actor(), T0 + 10 * day)?;
            assert_eq!(lapsed, vec!["nia".to_string()]);
            assert!(users::get(c, "nia")?.disabled);
            assert!(tokens::resolve(c, T0, &secret)?.is_none(), "its keys are revoked");
            assert!(users::get(c, "ssoroot").is_ok_and(|u| !u.disabled), "local accounts never lapse");

            let ola = add_user(c, "ola", Role::User);
            groups::create(c, T0, &actor(), "ola-team", "")?;
            groups::add_member(c, T0, &actor(), "ola-team", "ola")?;
            let issuer = Issuer::Session { user_id: ola.id, admin: false };
            let (_, secret) = tokens::create(c, T0, &actor(), issuer, "ola", "script", None)?;
            let gone = users::deprovision(c, T0, &actor(), "ola")?;
            assert!(gone.disabled);
            assert!(groups::of_user(c, ola.id)?.is_empty());
            assert!(tokens::resolve(c, T0, &secret)?.is_none());
            Ok(())
        })
        .unwrap();
}

fn api_tokens_resolve_until_revoked_or_expired(store: &Store) {
    store
        .run_blocking(|c| {
            add_user(c, "tess", Role::Admin);
            let (t, secret) = tokens::create(c, T0, &actor(), Issuer::Local, "tess", "ci", Some(T0 + 100))?;
            assert!(secret.starts_with(tokens::PREFIX) && secret.starts_with(&t.prefix));
            let (_, user) = tokens::resolve(c, T0 + 10, &secret)?.unwrap();
            assert_eq!(user.username, "tess");
            assert!(tokens::resolve(c, T0 + 100, &secret)?.is_none(), "expired");
            assert!(tokens::resolve(c, T0, "ayush_wrong")?.is_none());
            let (t2, secret2) = tokens::create(c, T0, &actor(), Issuer::Local, "tess", "ops", None)?;
            assert_eq!(tokens::list(c, Some("tess"))?.len(), 2);
            assert_eq!(tokens::list(c, Some("nobody"))?.len(), 0);
            tokens::revoke(c, T0, &actor(), t2.id)?;
            assert!(tokens::resolve(c, T0, &secret2)?.is_none());
            assert_eq!(tokens::revoke(c, T0, &actor(), 9999).unwrap_err().kind, ErrorKind::NotFound);
            assert!(tokens::create(c, T0, &actor(), Issuer::Local, "tess", "", None).is_err());
            Ok(())
        })
        .unwrap();
}

fn throttle_locks_an_account_for_the_window(store: &Store) {
    let cfg = AuthConfig { lockout_max_failures: 3, lockout_window_mins: 10, ..Default::default() };
    store
        .run_blocking(|c| {
            // The name as typed differs only in case and spaces: one account, one count.
            let uma = Account::new(" Uma", false);
            assert_eq!(uma, Account::new("UMA", false));
            assert_eq!(Account::new(r"CORP\uma", true), Account::new("uma@corp.example", true));
            for i in 0..3 {
                assert_eq!(throttle::locked_for(c, T0 + i, &cfg, &uma, "10.0.0.9")?, None);
                throttle::record_failure(c, T0 + i, &uma, "10.0.0.9")?;
            }
            let wait = throttle::locked_for(c, T0 + 3, &cfg, &uma, "10.0.0.1")?.expect("locked by account");
            assert_eq!(wait, 600 - 3);
            assert_eq!(
                throttle::locked_for(c, T0 + 3, &cfg, &Account::new("vic", false), "10.0.0.9")?,
                None,
                "others on the address still may"
            );
            assert_eq!(throttle::locked_for(c, T0 + 600, &cfg, &uma, "10.0.0.1")?, None, "the window passed");
            for i in 0..30 {
                throttle::record_failure(
                    c,
                    T0 + 700,
                    &Account::new(&format!("spray{i}"), false),
                    "10.6.6.6",
                )?;
            }
            assert!(
                throttle::locked_for(c, T0 + 701, &cfg, &Account::new("fresh", false), "10.6.6.6")?.is_some(),
                "locked by address"
            );
            throttle::clear_account(c, &uma)?;
            assert!(throttle::purge(c, T0 + 2000, &cfg)? > 0);
            Ok(())
        })
        .unwrap();
}

/// PostgreSQL over TLS: the server's certificate is verified, so one that does not name the host
/// is refused, and the local cluster's certificate (for localhost) is accepted once trusted.
#[test]
#[cfg_attr(
    not(ayush_test_postgres_tls),
    ignore = "set AYUSH_TEST_DATABASE_URL, on a cluster with Debian's snakeoil certificate, to run it"
)]
fn postgres_over_tls_verifies_the_server() {
    let url = std::env::var("AYUSH_TEST_DATABASE_URL")
        .expect("AYUSH_TEST_DATABASE_URL, set when the suite was built");
    let snakeoil = std::path::Path::new("/etc/ssl/certs/ssl-cert-snakeoil.pem");
    let names_localhost = std::fs::read(snakeoil).is_ok() && {
        let out = std::process::Command::new("openssl")
            .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
            .arg(snakeoil)
            .output();
        out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("DNS:localhost"))
    };
    assert!(names_localhost, "{} must name localhost for this test", snakeoil.display());
    let tls_url = format!("{}?sslmode=require", url.replace("127.0.0.1", "localhost"));
    let by_ip = format!("{}?sslmode=require", url.replace("localhost", "127.0.0.1"));
    let keys = tempfile::tempdir().unwrap();
    let test_chain = || common::test_chain(keys.path());
    let mismatch = DatabaseConfig { url: by_ip, pool_size: 1, ca_file: Some(snakeoil.to_path_buf()) };
    let err = Store::open(&mismatch, std::path::Path::new("/nonexistent"), test_chain())
        .err()
        .expect("wrong name refused");
    assert!(err.to_string().contains("TLS") || err.to_string().contains("certificate"), "{err}");
    let trusted = DatabaseConfig { url: tls_url, pool_size: 1, ca_file: Some(snakeoil.to_path_buf()) };
    match Store::open(&trusted, std::path::Path::new("/nonexistent"), test_chain()) {
        Ok(store) => store.run_blocking(|c| c.ping().map_err(Into::into)).unwrap(),
        Err(e) => panic!("TLS with the cluster's certificate trusted: {e}"),
    }
}

fn a_lease_has_one_holder_until_it_lapses_or_is_given_up(store: &Store) {
    let t = 1_000_000;
    store
        .run_blocking(|c| {
            assert!(lease::take(c, "work", "a", t, 10)?, "free: a takes it");
            assert!(!lease::take(c, "work", "b", t + 5, 10)?, "a holds it");
            assert!(lease::take(c, "work", "a", t + 9, 10)?, "a renews");
            assert!(!lease::take(c, "work", "b", t + 18, 10)?, "renewed until t + 19");
            assert!(lease::take(c, "work", "b", t + 20, 10)?, "a fell silent: b takes it");
            assert_eq!(lease::holder(c, "work")?, Some(("b".to_string(), t + 30)));
            assert!(!lease::take(c, "work", "a", t + 21, 10)?, "a cannot take it back while b holds it");
            assert!(lease::take(c, "other", "a", t + 21, 10)?, "leases are independent");

            // A replica that stops cleanly hands its duty over at once.
            let (one, two) = (Duty::new("one"), Duty::new("two"));
            assert!(one.renew(c, t)? && one.mine());
            assert!(!two.renew(c, t + 1)? && !two.mine());
            one.give_up(c)?;
            assert!(!one.mine());
            assert!(two.renew(c, t + 2)? && two.mine());
            Ok(())
        })
        .unwrap();
}

fn usage_reports_break_answers_down_by_each_dimension(store: &Store) {
    use ayush_server::usage::{self, By, Grain, Outcome, Record, Span};
    let answer =
        |at: i64, user: &str, groups: &[&str], key: Option<i64>, model: &str, tokens: i64, outcome| Record {
            at,
            user_id: None,
            username: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            api_key_id: key,
            source: "v1.chat",
            model: model.into(),
            provider: usage::provider_of(model).into(),
            prompt_tokens: tokens,
            completion_tokens: tokens / 2,
            images: 0,
            ttft_ms: (outcome == Outcome::Ok).then_some(100),
            duration_ms: 1_000,
            outcome,
        };
    store
        .run_blocking(|c| {
            for r in [
                answer(T0, "ana", &["eng", "ops"], None, "qwen", 100, Outcome::Ok),
                answer(T0 + 10, "ana", &["eng", "ops"], Some(7), "openai/gpt-4o", 1_000, Outcome::Ok),
                answer(T0 + 20, "bo", &["eng"], None, "qwen", 10, Outcome::Error),
                answer(T0 + 30, "cy", &[], None, "qwen", 0, Outcome::Cancelled),
                answer(T0 + 86_400, "ana", &["eng"], None, "qwen", 5, Outcome::Ok),
            ] {
                usage::record(c, &r)?;
            }
            let day = Span { from: T0, to: T0 + 86_400 };
            let lines = |c: &mut Conn, by| -> Vec<(String, i64, i64)> {
                usage::report(c, day, by)
                    .unwrap()
                    .into_iter()
                    .map(|l| (l.key, l.requests, l.prompt_tokens + l.completion_tokens))
                    .collect()
            };
            assert_eq!(
                lines(c, By::User),
                [("ana".to_string(), 2, 1_650), ("bo".to_string(), 1, 15), ("cy".to_string(), 1, 0)],
                "the next day's answer is outside the span; most tokens first"
            );
            assert_eq!(
                lines(c, By::Group),
                [("eng".to_string(), 3, 1_665), ("ops".to_string(), 2, 1_650), ("-".to_string(), 1, 0),],
                "an answer counts in each of its asker's groups"
            );
            assert_eq!(
                lines(c, By::Provider),
                [("openai".to_string(), 1, 1_500), ("local".to_string(), 3, 165)]
            );
            assert_eq!(lines(c, By::Key), [("#7".to_string(), 1, 1_500), ("-".to_string(), 3, 165)]);
            let qwen = usage::report(c, day, By::Model)?.into_iter().find(|l| l.key == "qwen").unwrap();
            assert_eq!((qwen.errors, qwen.cancelled, qwen.mean_ttft_ms), (1, 1, Some(100)));

            // Retention: 0 keeps everything; otherwise the records of whole days older than the
            // days kept are rolled up by day, and go.
            let all = Span { from: 0, to: i64::MAX / 2 };
            let before: Vec<_> = By::ALL.iter().map(|by| usage::report(c, all, *by).unwrap()).collect();
            assert_eq!(usage::prune(c, T0 + 400 * 86_400, 0)?, 0);
            assert_eq!(usage::prune(c, T0 + 31 * 86_400, 30)?, 4, "the four answers of the first day");
            assert_eq!(usage::prune(c, T0 + 31 * 86_400, 30)?, 0, "rolled up once");
            let after: Vec<_> = By::ALL.iter().map(|by| usage::report(c, all, *by).unwrap()).collect();
            let counts = |lines: &Vec<Vec<usage::Line>>| -> Vec<String> {
                let line = |l: &usage::Line| {
                    let tokens = l.prompt_tokens + l.completion_tokens;
                    format!("{} {} {tokens} {} {} {}", l.key, l.requests, l.errors, l.cancelled, l.cost)
                };
                lines.iter().flatten().map(line).collect()
            };
            assert_eq!(counts(&after), counts(&before), "every breakdown keeps its totals");
            let ana = &after[0].iter().find(|l| l.key == "ana").unwrap();
            assert_eq!(
                (ana.mean_ttft_ms, ana.p95_ttft_ms),
                (Some(100), Some(100)),
                "the mean over both; p95 over the records kept"
            );
            let (days, total) = usage::bars(c, Span { from: T0 - 86_400, to: T0 + 2 * 86_400 }, Grain::Day)?;
            assert_eq!(
                days.iter().map(|d| d.requests).collect::<Vec<_>>(),
                [0, 4, 1, 0],
                "four days, two in part"
            );
            assert_eq!(total.requests, 5);
            // Hours, from the hourly rollup now that the records are gone (T0 is 08:00 UTC).
            let (hours, total) = usage::bars(c, Span { from: T0 - 3_600, to: T0 + 2 * 3_600 }, Grain::Hour)?;
            assert_eq!(
                hours.iter().map(|h| (h.start, h.requests)).collect::<Vec<_>>(),
                [(T0 - 3_600, 0), (T0, 4), (T0 + 3_600, 0)]
            );
            assert_eq!((hours[1].local_tokens, total.requests), (165, 4));
            assert!(usage::bars(c, Span { from: T0, to: T0 + 49 * 3_600 }, Grain::Hour).is_err());
            // The hourly rollup lasts HOURLY_KEEP_DAYS; the daily one for good.
            usage::prune(c, T0 + (usage::HOURLY_KEEP_DAYS + 1) * 86_400, 30)?;
            let (hours, _) = usage::bars(c, Span { from: T0, to: T0 + 3_600 }, Grain::Hour)?;
            assert_eq!(hours[0].requests, 0);
            let first_day = Span { from: T0 - 8 * 3_600, to: T0 + 16 * 3_600 };
            assert_eq!(usage::bars(c, first_day, Grain::Day)?.1.requests, 4);
            Ok(())
        })
        .unwrap();
}

fn answers_are_costed_at_their_models_price(store: &Store) {
    use ayush_server::usage::{self, By, Outcome, Record, Span, prices, quotas};
    store
        .run_blocking(|c| {
            let ana = add_user(c, "ana", Role::User);
            let answer = |model: &str, prompt, completion, outcome| Record {
                user_id: Some(ana.id),
                prompt_tokens: prompt,
                completion_tokens: completion,
                outcome,
                ..Record::new(T0, &actor(), "v1.chat", model)
            };
            prices::set(
                c,
                T0,
                &actor(),
                "openai",
                "gpt-4o",
                prices::Rates { input: 2_500_000, output: 10_000_000, per_image: 0 },
            )?;
            prices::set(
                c,
                T0,
                &actor(),
                "local",
                "qwen",
                prices::Rates { input: 100_000, output: 100_000, per_image: 0 },
            )?;
            // A price set again replaces the old one.
            prices::set(
                c,
                T0,
                &actor(),
                "openai",
                "gpt-4o",
                prices::Rates { input: 2_500_000, output: 10_000_000, per_image: 0 },
            )?;
            assert_eq!(prices::list(c)?.len(), 2);
            usage::record(c, &answer("openai/gpt-4o", 1_000, 500, Outcome::Ok))?;
            usage::record(c, &answer("qwen", 10_000, 0, Outcome::Ok))?;
            usage::record(c, &answer("openai/unpriced", 1_000_000, 0, Outcome::Ok))?;
            usage::record(c, &answer("openai/gpt-4o", 0, 0, Outcome::Refused))?;
            let lines = usage::report(c, Span { from: T0, to: T0 + 1 }, By::Model)?;
            let cost = |m: &str| lines.iter().find(|l| l.key == m).unwrap().cost;
            assert!((cost("openai/gpt-4o") - 0.0075).abs() < 1e-12, "{lines:?}");
            assert!((cost("qwen") - 0.001).abs() < 1e-12, "a local model's notional price");
            assert_eq!(cost("openai/unpriced"), 0.0);
            let refused = lines.iter().find(|l| l.key == "openai/gpt-4o").unwrap().refused;
            assert_eq!(refused, 1, "the refusal is in the report, costing nothing");

            // The day counters quotas read: local and remote apart, refusals not counted.
            let used = quotas::used(c, ana.id, &quotas::Periods::at(T0))?;
            assert_eq!(used["remote"].tokens_today, 1_001_500);
            assert_eq!(used["remote"].requests_today, 2);
            assert_eq!(used["remote"].cost_nanos_this_month, 7_500_000);
            assert_eq!(used["local"].tokens_this_month, 10_000);

            prices::remove(c, T0, &actor(), "local", "qwen")?;
            assert_eq!(
                prices::remove(c, T0, &actor(), "local", "qwen").unwrap_err().kind,
                ErrorKind::NotFound
            );
            Ok(())
        })
        .unwrap();
}

fn quotas_refuse_past_a_limit_and_say_when_it_resets(store: &Store) {
    use ayush_server::usage::quotas::{self, Limit, QuotaOf, SetQuota};
    use ayush_server::usage::{self, Record};
    // 2027-01-15 10:00:30 UTC.
    let now = 1_800_007_230;
    store
        .run_blocking(|c| {
            let ana = add_user(c, "ana", Role::User);
            let bo = add_user(c, "bo", Role::Admin);
            groups::create(c, T0, &actor(), "eng", "")?;
            groups::create(c, T0, &actor(), "ops", "")?;
            for (g, u) in [("eng", "ana"), ("ops", "ana"), ("eng", "bo")] {
                groups::add_member(c, T0, &actor(), g, u)?;
            }
            let set = |c: &mut Conn, body: serde_json::Value| {
                quotas::set(c, now, &actor(), serde_json::from_value::<SetQuota>(body).unwrap())
            };
            // Bad quotas are refused with a reason.
            for bad in [
                serde_json::json!({"user": "ana"}),
                serde_json::json!({"user": "ana", "group": "eng", "concurrent": 1}),
                serde_json::json!({"user": "ana", "pool": "gpu", "concurrent": 1}),
                serde_json::json!({"user": "ana", "tokens_per_day": -1}),
                serde_json::json!({"user": "ana", "pool": "local", "spend_per_month": "5"}),
                serde_json::json!({"user": "nobody", "concurrent": 1}),
            ] {
                assert!(set(c, bad.clone()).is_err(), "{bad}");
            }
            set(c, serde_json::json!({"group": "eng", "tokens_per_day": 1_000, "requests_per_minute": 2}))?;
            set(c, serde_json::json!({"group": "ops", "tokens_per_day": 5_000, "concurrent": 1}))?;
            // The most generous of ana's groups, limit by limit: ops has no minute limit.
            let local = quotas::effective(c, ana.id, "local")?;
            assert_eq!(local.len(), 1);
            assert_eq!((local[0].1.tokens_per_day, local[0].1.requests_per_minute), (Some(5_000), None));
            assert_eq!(local[0].1.concurrent, None, "eng has no concurrent limit");

            // A user's own quota holds over their groups'.
            set(c, serde_json::json!({"user": "ana", "tokens_per_day": 100, "concurrent": 1}))?;
            let answered = |c: &mut Conn, user: i64, model: &str, tokens: i64| {
                let r = Record {
                    user_id: Some(user),
                    prompt_tokens: tokens,
                    ..Record::new(now, &actor(), "chat", model)
                };
                usage::record(c, &r)
            };
            let first = quotas::check(c, now, ana.id, "local", false)?.expect("under every limit");
            let slot = first.slot.expect("a concurrent limit takes a slot");
            let busy = quotas::check(c, now, ana.id, "local", false)?.expect_err("one answer at a time");
            assert_eq!((busy.limit, busy.used, busy.allowed), (Limit::Concurrent, 1, 1));
            quotas::free(c, slot)?;
            answered(c, ana.id, "qwen", 150)?;
            let spent = quotas::check(c, now, ana.id, "local", false)?.expect_err("over today's tokens");
            assert_eq!((spent.limit, spent.used, spent.allowed), (Limit::TokensPerDay, 150, 100));
            let message = spent.message(now, "USD");
            assert!(message.contains("150 of your 100 tokens for today"), "{message}");
            assert!(message.contains("2027-01-16 00:00 UTC"), "{message}");
            let error = spent.error(now, "USD");
            assert_eq!(error.kind.status().as_u16(), 429);
            assert_eq!(error.retry_after, Some(14 * 3600 - 30));
            assert!(
                error.headers.contains(&("x-ratelimit-remaining-tokens", "0".into())),
                "{:?}",
                error.headers
            );
            // Remote answers are not limited by a quota on local ones, but by pool all.
            let remote = quotas::check(c, now, ana.id, "remote", false)?;
            assert!(remote.is_err(), "ana's pool-all quota counts local and remote together");
            quotas::remove(c, now, &actor(), QuotaOf { user: Some("ana".into()), ..Default::default() })?;
            assert!(quotas::check(c, now, ana.id, "local", false)?.is_ok(), "the groups' 5,000 hold again");

            // Requests per minute, counted in the database; the window turns with the minute.
            let checked = quotas::check(c, now, bo.id, "local", false)?.unwrap();
            assert!(
                checked.headers.contains(&("x-ratelimit-remaining-requests", "1".into())),
                "{:?}",
                checked.headers
            );
            assert!(quotas::check(c, now, bo.id, "local", false)?.is_ok());
            let fast =
                quotas::check(c, now, bo.id, "local", false)?.expect_err("a third request this minute");
            assert_eq!(fast.limit, Limit::RequestsPerMinute);
            assert!(quotas::check(c, now + 30, bo.id, "local", false)?.is_ok(), "a new minute");
            assert!(quotas::check(c, now + 30, bo.id, "local", true)?.is_ok(), "an admin exempt when chosen");

            // A spending cap counts remote cost only.
            set(c, serde_json::json!({"user": "bo", "pool": "remote", "spend_per_month": "0.01"}))?;
            usage::prices::set(
                c,
                now,
                &actor(),
                "openai",
                "gpt-4o",
                usage::prices::Rates { input: 100_000_000, output: 100_000_000, per_image: 0 },
            )?;
            answered(c, bo.id, "openai/gpt-4o", 500)?;
            let broke = quotas::check(c, now + 60, bo.id, "remote", false)?.expect_err("0.01 spent");
            assert_eq!(broke.limit, Limit::SpendPerMonth);
            assert_eq!(broke.error(now, "USD").reason.map(|r| r.code()), Some("insufficient_quota"));

            // Refusals: counted per person per hour, then one audit event each.
            let refused = Record { user_id: Some(ana.id), ..Record::new(now, &actor(), "chat", "qwen") };
            quotas::count_refusal(c, now, &refused, Limit::TokensPerDay)?;
            quotas::count_refusal(c, now, &refused, Limit::TokensPerDay)?;
            quotas::count_refusal(c, now, &refused, Limit::Concurrent)?;
            assert_eq!(quotas::summarize_refusals(c, now)?, 0, "the hour is not over");
            assert_eq!(quotas::summarize_refusals(c, now + 3600)?, 1, "one event for ana's hour");
            assert_eq!(quotas::summarize_refusals(c, now + 7200)?, 0, "and only once");
            let refusals = ayush_server::audit::query::Filter {
                action: Some("quota.refused".into()),
                ..Default::default()
            };
            let events = ayush_server::audit::query::page(c, &refusals.check()?, None, 10)?;
            let summary = events.iter().find(|e| e.action == "quota.refused").expect("the summary");
            let details: serde_json::Value = serde_json::from_str(&summary.details).unwrap();
            assert_eq!(details["refusals"], 3);
            assert_eq!(details["by_limit"]["tokens_per_day"], 2);
            quotas::sweep(c, now + 7200)?;
            Ok(())
        })
        .unwrap();
}

fn a_theme_is_stored_whole_and_its_notice_accepted_once(store: &Store) {
    use ayush_server::config::ThemeConfig;
    use ayush_server::theme::{Change, ImageBody, Themes};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let clock = ManualClock::at(T0);
    let themes = Themes::new(&ThemeConfig::default(), store.clone(), clock.clone()).unwrap();
    // Another replica on the same database.
    let other = Themes::new(&ThemeConfig::default(), store.clone(), clock).unwrap();
    let ana = store.run_blocking(|c| Ok(add_user(c, "ana", Role::User))).unwrap();
    let as_ana = Actor { user_id: Some(ana.id), name: "ana".into(), ..actor() };
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x20\0\0\0\x20\x08\x06\0\0\0\0\0\0\0".to_vec();
    png.extend(b"\0\0\0\0IEND\xaeB`\x82");
    rt.block_on(async {
        let change = Change {
            product_name: Some(Some("Acme Assist".into())),
            logo: Some(Some(ImageBody::of("image/png", &png))),
            banner: Some(Some("Authorised use only.".into())),
            ..Default::default()
        };
        let shown = themes.set(actor(), change).await.unwrap();
        assert_eq!((shown.revision, shown.effective.logo), (1, "set"));
        other.refresh().await.unwrap();
        let seen = other.current();
        assert_eq!((seen.product_name.as_str(), &*seen.logo().bytes), ("Acme Assist", png.as_slice()));

        // Refused whole: nothing of it is stored.
        let bad = Change {
            product_name: Some(Some("Changed".into())),
            primary_color: Some(Some("#fafafa".into())),
            ..Default::default()
        };
        let refused = themes.set(actor(), bad).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Validation, "{}", refused.message);
        assert_eq!(themes.show().await.unwrap().settings.product_name.as_deref(), Some("Acme Assist"));

        // The notice: pending until accepted, then accepted on every replica; a stale one is not.
        let pending = other.notice_for(ana.id).await.unwrap().unwrap();
        assert_eq!(pending.revision, 1);
        assert!(themes.acknowledge(as_ana.clone(), ana.id, 0).await.is_err());
        themes.acknowledge(as_ana.clone(), ana.id, 1).await.unwrap();
        assert_eq!(other.notice_for(ana.id).await.unwrap(), None);
        // A new text is a new notice; the same text again is not.
        let again = Change { banner: Some(Some("Authorised use only.".into())), ..Default::default() };
        themes.set(actor(), again).await.unwrap();
        assert_eq!(themes.notice_for(ana.id).await.unwrap(), None);
        let new = Change { banner: Some(Some("New rules.".into())), ..Default::default() };
        themes.set(actor(), new).await.unwrap();
        other.refresh().await.unwrap();
        assert_eq!(other.notice_for(ana.id).await.unwrap().map(|b| b.revision), Some(2));
    });
    let acks = store
        .run_blocking(|c| {
            let filter =
                audit::query::Filter { action: Some("notice.acknowledged".into()), ..Default::default() };
            audit::query::page(c, &filter.check()?, None, 10)
        })
        .unwrap();
    assert_eq!(acks.len(), 1);
}

/// Both migration folders describe one schema: the same tables and columns (by kind of type
/// and nullability) and the same secondary indexes (columns, uniqueness), so code written and
/// tested on one backend means the same on the other.
#[test]
#[cfg_attr(not(ayush_test_postgres), ignore = "set AYUSH_TEST_DATABASE_URL to run it on PostgreSQL")]
fn both_migration_folders_make_the_same_schema() {
    let pg = common::pg_db();
    let lite = schema(&common::sqlite_db().store);
    let post = schema(&pg.store);
    assert!(lite.len() > 100, "the schema was read: {lite:#?}");
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect::<Vec<_>>();
    assert!(
        lite == post,
        "only in SQLite: {:#?}\nonly in PostgreSQL: {:#?}",
        only(&lite, &post),
        only(&post, &lite)
    );
}

#[derive(QueryableByName)]
struct Column {
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = Text)]
    col: String,
    #[diesel(sql_type = Text)]
    ty: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct Index {
    #[diesel(sql_type = Text)]
    tbl: String,
    #[diesel(sql_type = Text)]
    cols: String,
    #[diesel(sql_type = Bool)]
    uniq: bool,
}

/// Diesel's own bookkeeping differs by backend and is not ours. An index on expressions
/// (`lower(name)`) shows each as `(expression)`: the comparison sees how many, not which.
const SQLITE_COLUMNS: &str = "SELECT m.name AS tbl, p.name AS col, coalesce(p.type, '') AS ty,
        (p.\"notnull\" = 0 AND p.pk = 0) AS nullable
    FROM sqlite_master m JOIN pragma_table_info(m.name) p
    WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name <> '__diesel_schema_migrations'";
const SQLITE_INDEXES: &str = "SELECT m.name AS tbl,
        coalesce((SELECT group_concat(coalesce(ii.name, '(expression)'), ',')
            FROM pragma_index_info(il.name) ii), '') AS cols,
        il.\"unique\" AS uniq
    FROM sqlite_master m JOIN pragma_index_list(m.name) il
    WHERE m.type = 'table' AND il.origin <> 'pk' AND m.name NOT LIKE 'sqlite_%'
        AND m.name <> '__diesel_schema_migrations'";
const PG_COLUMNS: &str = "SELECT table_name::text AS tbl, column_name::text AS col, data_type::text AS ty,
        (is_nullable = 'YES') AS nullable
    FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations'";
const PG_INDEXES: &str = "SELECT t.relname::text AS tbl,
        string_agg(coalesce(a.attname::text, '(expression)'), ',' ORDER BY k.ord) AS cols,
        ix.indisunique AS uniq
    FROM pg_index ix
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_class i ON i.oid = ix.indexrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord)
        LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
    WHERE n.nspname = 'public' AND NOT ix.indisprimary AND t.relname <> '__diesel_schema_migrations'
    GROUP BY t.relname, i.relname, ix.indisunique";

/// The schema as lines that mean the same on either backend.
fn schema(store: &Store) -> BTreeSet<String> {
    let (columns, indexes) = store
        .run_blocking(|c| {
            let read = match c.db() {
                Db::Sqlite(c) => sql_query(SQLITE_COLUMNS)
                    .load::<Column>(c)
                    .and_then(|columns| Ok((columns, sql_query(SQLITE_INDEXES).load::<Index>(c)?))),
                Db::Pg(c) => sql_query(PG_COLUMNS)
                    .load::<Column>(c)
                    .and_then(|columns| Ok((columns, sql_query(PG_INDEXES).load::<Index>(c)?))),
            };
            // The query's own words, not the generic message a database error gets.
            read.map_err(|e| ayush_server::error::AppError::bad_request(e.to_string()))
        })
        .unwrap();
    let kind = |ty: &str| match ty.to_ascii_lowercase().as_str() {
        "integer" | "bigint" | "int" | "smallint" => "integer",
        "text" | "character varying" | "varchar" => "text",
        "boolean" | "bool" => "boolean",
        "blob" | "bytea" => "bytes",
        "real" | "double precision" | "double" | "float" => "float",
        other => panic!("a column type the comparison does not know: {other}"),
    };
    let columns = columns.into_iter().map(|c| {
        let null = if c.nullable { "null" } else { "not null" };
        format!("{}.{} {} {null}", c.tbl, c.col, kind(&c.ty))
    });
    let indexes = indexes.into_iter().map(|i| {
        let unique = if i.uniq { "unique index" } else { "index" };
        format!("{unique} {}({})", i.tbl, i.cols)
    });
    columns.chain(indexes).collect()
}
