//! The audit chain on every backend: events written by many writers verify, and a database
//! administrator who modifies, deletes, reorders or truncates events (or forges a checkpoint)
//! is caught, with the first bad sequence number named.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

mod common;

use ayush_server::audit::anchor::{Anchor, AnchorError, Checkpoint};
use ayush_server::audit::verify::{self, ProblemKind, Report, Witnesses};
use ayush_server::audit::{self, Actor, Event, Keys, Outcome};
use ayush_server::store::{Conn, Journal, Store};
use ayush_server::with_conn;
use common::TestDb;
use diesel::RunQueryDsl;

const T0: i64 = 1_800_000_000;

macro_rules! audit_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name(&super::common::sqlite_db()) } )*
        }
        mod postgres {
            $(
                #[test]
                #[cfg_attr(not(ayush_test_postgres), ignore = "set AYUSH_TEST_DATABASE_URL to run it on PostgreSQL")]
                fn $name() { super::$name(&super::common::pg_db()) }
            )*
        }
    };
}

audit_suite!(
    an_untouched_log_verifies,
    concurrent_writers_keep_one_unbroken_chain,
    verifying_while_others_write_raises_no_false_alarm,
    events_beyond_the_head_are_caught,
    a_modified_event_is_caught,
    a_deleted_event_is_caught,
    reordered_events_are_caught,
    a_deletion_hidden_by_renumbering_is_caught,
    a_truncated_end_is_caught,
    truncation_with_the_head_rewound_is_caught_outside_the_database,
    a_forged_checkpoint_is_caught,
    verification_can_start_from_a_checkpoint,
    the_head_file_never_moves_backwards,
    events_from_before_the_chain_are_sealed,
    retention_prunes_behind_a_checkpoint_and_the_rest_verifies,
    a_legal_hold_keeps_events_and_conversations,
);

fn actor() -> Actor {
    Actor { name: "alice".into(), user_id: Some(1), method: Some("session".into()), ..Default::default() }
}

fn write_events(store: &Store, n: usize) {
    store
        .run_blocking(|c| {
            let actor = actor();
            for i in 0..n {
                let event = Event::new(&actor, "test.event", Outcome::Success)
                    .target("thing", i)
                    .details(serde_json::json!({"i": i}));
                c.transaction(|c| audit::record(c, T0 + i as i64, &event))?;
            }
            Ok(())
        })
        .unwrap();
}

fn sql(store: &Store, statements: &[&str]) {
    store
        .run_blocking(|c| {
            for s in statements {
                with_conn!(c, |c| diesel::sql_query(*s).execute(c))?;
            }
            Ok(())
        })
        .unwrap();
}

fn keys(db: &TestDb) -> Keys {
    Keys::load(&db.dir.path().join("secrets")).unwrap()
}

fn anchor(db: &TestDb) -> Anchor {
    Anchor::new(db.dir.path().join("audit"))
}

fn verify_with(db: &TestDb, from: Option<&Checkpoint>) -> Report {
    let keys = keys(db);
    let anchor = anchor(db);
    let witnesses = Witnesses { public_key: keys.public_key(), anchor: Some(&anchor), from };
    db.store.run_blocking(|c| verify::verify(c, &witnesses, T0 + 1000)).unwrap()
}

fn verify(db: &TestDb) -> Report {
    verify_with(db, None)
}

#[track_caller]
fn assert_problem(report: &Report, seq: i64, kind: ProblemKind) {
    let problem = report.problem.as_ref().unwrap_or_else(|| panic!("tampering not caught: {report:?}"));
    assert_eq!((problem.seq, problem.kind), (seq, kind), "{}", problem.message);
    assert!(!report.ok);
}

fn checkpoint(db: &TestDb, reason: &str) -> Checkpoint {
    let keys = keys(db);
    let anchor = anchor(db);
    db.store
        .run_blocking(|c| audit::anchor::checkpoint(c, &keys, &anchor, T0 + 500, reason))
        .unwrap()
        .unwrap()
}

fn refresh_head(db: &TestDb) -> Result<(), AnchorError> {
    let anchor = anchor(db);
    let mut result = Ok(());
    db.store
        .run_blocking(|c: &mut Conn| {
            result = anchor.refresh(c, T0 + 600).map(drop);
            Ok(())
        })
        .unwrap();
    result
}

fn an_untouched_log_verifies(db: &TestDb) {
    let empty = verify(db);
    assert!(empty.ok && empty.events == 0, "{empty:?}");
    write_events(&db.store, 10);
    checkpoint(db, "manual");
    refresh_head(db).unwrap();
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!((report.events, report.first_seq, report.last_seq), (10, Some(1), Some(10)));
    assert_eq!((report.checkpoints, report.head_file), (1, Some(10)));
}

/// Writers that read before they write (as most changes do: check, then change, then record)
/// race for the chain head; none may fail or break the chain.
fn concurrent_writers_keep_one_unbroken_chain(db: &TestDb) {
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for i in 0..15 {
                    db.store
                        .run_blocking(|c| {
                            c.transaction(|c| {
                                audit::recent(c, 1)?;
                                std::thread::yield_now();
                                let actor = actor();
                                let event =
                                    Event::new(&actor, "test.event", Outcome::Success).target("thing", i);
                                audit::record(c, T0, &event)
                            })
                        })
                        .unwrap();
                }
            });
        }
    });
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!(report.events, 60);
}

/// Another replica (or thread) keeps writing while the log is verified: events appended during
/// the walk are not a truncated log, and a half-written one is never seen.
fn verifying_while_others_write_raises_no_false_alarm(db: &TestDb) {
    let writing = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    for i in 0..40 {
                        let actor = actor();
                        let event = Event::new(&actor, "test.event", Outcome::Success).target("thing", i);
                        db.store.run_blocking(|c| audit::record(c, T0, &event)).unwrap();
                    }
                })
            })
            .collect();
        let verifier = s.spawn(|| {
            let mut rounds = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                let report = verify(db);
                assert!(report.ok, "round {rounds}: {}", report.summary());
                rounds += 1;
            }
            rounds
        });
        for w in writers {
            w.join().unwrap();
        }
        writing.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(verifier.join().unwrap() > 0);
    });
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!(report.events, 120);
}

/// Rows put past the head, or a head moved back over rows, are caught even where no
/// checkpoint or head file saw the end.
fn events_beyond_the_head_are_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(&db.store, &["UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM audit_events WHERE seq = 7)"]);
    let report = db
        .store
        .run_blocking(|c| {
            let keys = keys(db);
            let witnesses = Witnesses { public_key: keys.public_key(), anchor: None, from: None };
            verify::verify(c, &witnesses, T0 + 1000)
        })
        .unwrap();
    assert_problem(&report, 8, ProblemKind::Modified);
    assert!(report.problem.unwrap().message.contains("beyond the chain head"));
}

fn a_modified_event_is_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(&db.store, &["UPDATE audit_events SET details = '{\"i\": 99}' WHERE seq = 4"]);
    assert_problem(&verify(db), 4, ProblemKind::Modified);
}

fn a_deleted_event_is_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(&db.store, &["DELETE FROM audit_events WHERE seq = 4"]);
    let report = verify(db);
    assert_problem(&report, 4, ProblemKind::Deleted);
    assert!(report.problem.unwrap().message.contains("event 4 is missing"));
    // The first event too: no checkpoint covers a cut at the start.
    sql(&db.store, &["DELETE FROM audit_events WHERE seq = 1"]);
    assert_problem(&verify(db), 1, ProblemKind::Deleted);
}

fn reordered_events_are_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(
        &db.store,
        &[
            "UPDATE audit_events SET seq = -1 WHERE seq = 4",
            "UPDATE audit_events SET seq = 4 WHERE seq = 5",
            "UPDATE audit_events SET seq = 5 WHERE seq = -1",
        ],
    );
    let report = verify(db);
    assert_problem(&report, 4, ProblemKind::Reordered);
    assert!(report.problem.unwrap().message.contains("written as seq 5"));
}

fn a_deletion_hidden_by_renumbering_is_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(
        &db.store,
        &[
            "DELETE FROM audit_events WHERE seq = 4",
            "UPDATE audit_events SET seq = -seq WHERE seq > 4",
            "UPDATE audit_events SET seq = -seq - 1 WHERE seq < 0",
            "UPDATE audit_head SET seq = seq - 1",
        ],
    );
    let report = verify(db);
    assert_problem(&report, 4, ProblemKind::Deleted);
    assert!(report.problem.unwrap().message.contains("renumbered"));
}

fn a_truncated_end_is_caught(db: &TestDb) {
    write_events(&db.store, 10);
    sql(&db.store, &["DELETE FROM audit_events WHERE seq > 7"]);
    let report = verify(db);
    assert_problem(&report, 8, ProblemKind::Truncated);
    assert!(report.problem.unwrap().message.contains("reached seq 10"));
}

/// The careful administrator also rewinds the database's head and deletes the checkpoints
/// stored in the database; the head file and the checkpoint copies outside it still tell.
fn truncation_with_the_head_rewound_is_caught_outside_the_database(db: &TestDb) {
    write_events(&db.store, 10);
    checkpoint(db, "periodic");
    let rewind = |db: &TestDb| {
        sql(
            &db.store,
            &[
                "DELETE FROM audit_events WHERE seq > 7",
                "UPDATE audit_head SET seq = 7, hash = (SELECT hash FROM audit_events WHERE seq = 7)",
                "DELETE FROM audit_checkpoints",
            ],
        )
    };
    rewind(db);
    let report = verify(db);
    assert_problem(&report, 8, ProblemKind::Truncated);
    assert!(report.problem.unwrap().message.contains("checkpoint"));

    // And with only the head file as witness (no checkpoint ever made).
    let db = common::sqlite_db();
    write_events(&db.store, 10);
    refresh_head(&db).unwrap();
    rewind(&db);
    let report = verify(&db);
    assert_problem(&report, 8, ProblemKind::Truncated);
    assert!(report.problem.unwrap().message.contains("head kept outside the database"));
}

fn a_forged_checkpoint_is_caught(db: &TestDb) {
    write_events(&db.store, 5);
    let real = checkpoint(db, "manual");
    let forged_head = "ab".repeat(32);
    sql(
        &db.store,
        &[&format!(
            "INSERT INTO audit_checkpoints (seq, head, at, reason, key_id, signature) \
             VALUES (3, '{forged_head}', {T0}, 'manual', '{}', '{}')",
            real.key_id, real.signature
        )],
    );
    assert_problem(&verify(db), 3, ProblemKind::Checkpoint);
}

fn verification_can_start_from_a_checkpoint(db: &TestDb) {
    write_events(&db.store, 5);
    let cp = checkpoint(db, "manual");
    write_events(&db.store, 5);
    let report = verify_with(db, Some(&cp));
    assert!(report.ok, "{}", report.summary());
    assert_eq!((report.events, report.first_seq, report.from_checkpoint), (5, Some(6), Some(5)));
    sql(&db.store, &["UPDATE audit_events SET actor_name = 'mallory' WHERE seq = 8"]);
    assert_problem(&verify_with(db, Some(&cp)), 8, ProblemKind::Modified);
    // A checkpoint whose event was later rewritten no longer vouches for it.
    sql(&db.store, &["UPDATE audit_events SET actor_name = 'alice' WHERE seq = 8"]);
    sql(&db.store, &["UPDATE audit_events SET outcome = 'failure' WHERE seq = 5"]);
    assert_problem(&verify(db), 5, ProblemKind::Modified);
}

fn the_head_file_never_moves_backwards(db: &TestDb) {
    write_events(&db.store, 6);
    refresh_head(db).unwrap();
    assert_eq!(anchor(db).read_head().unwrap().unwrap().seq, 6);
    sql(
        &db.store,
        &[
            "DELETE FROM audit_events WHERE seq > 4",
            "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_events WHERE seq = 4)",
        ],
    );
    assert!(matches!(refresh_head(db), Err(AnchorError::Behind { db_seq: 4, .. })));
    // New events fill 5 and 6 again, but they are not the events the file saw.
    write_events(&db.store, 3);
    assert!(matches!(refresh_head(db), Err(AnchorError::Diverged { seq: 6 })));
    assert_eq!(anchor(db).read_head().unwrap().unwrap().seq, 6, "the file is kept as evidence");
    assert_problem(&verify(db), 6, ProblemKind::Modified);
}

/// Events written before the chain existed (by an older version) are sealed in order when the
/// store opens, and the chain carries on from them.
fn events_from_before_the_chain_are_sealed(db: &TestDb) {
    sql(
        &db.store,
        &[
            "INSERT INTO audit_events (seq, at, actor_name, action, outcome, details) \
             VALUES (1, 1, 'old', 'user.create', 'success', '{}'), (2, 2, 'old', 'auth.login', 'failure', '{}')",
            "UPDATE audit_head SET seq = 2, hash = ''",
        ],
    );
    let sealed = db.store.journal().clone();
    let sealed = db.store.run_blocking(|c| Ok(sealed.catch_up(c).unwrap())).unwrap();
    assert_eq!(sealed, 2);
    write_events(&db.store, 2);
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!(report.events, 4);
}

/// With `audit.fail_closed`, a change whose event cannot be written is not made; without it,
/// the change is made and the failure counted.
#[test]
fn fail_closed_refuses_the_change_and_fail_open_counts_the_loss() {
    use ayush_server::auth::{Role, users};
    use ayush_server::config::DatabaseConfig;
    use std::sync::Arc;
    for fail_closed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::load_or_create(&dir.path().join("secrets")).unwrap();
        let chain = Arc::new(audit::Chain::new(&keys, fail_closed));
        let store = Store::open(&DatabaseConfig::default(), dir.path(), chain.clone()).unwrap();
        sql(
            &store,
            &[
                "CREATE TRIGGER no_room BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END",
            ],
        );
        let new = users::NewUser::person("bob", Role::User, None);
        let created = store.run_blocking(|c| users::create(c, T0, &actor(), &new));
        let exists = store.run_blocking(|c| users::find_row(c, "bob")).unwrap().is_some();
        if fail_closed {
            let err = created.unwrap_err();
            assert_eq!(err.kind, ayush_server::error::ErrorKind::Unavailable);
            assert!(err.message.contains("audit log cannot be written"), "{}", err.message);
            assert!(!exists, "no change without its event");
        } else {
            created.unwrap();
            assert!(exists);
        }
        assert_eq!(chain.write_failures(), 1);
        let head = store.run_blocking(|c| Ok(audit::chain::head(c)?)).unwrap();
        assert_eq!(head.0, 0, "the failed event took no sequence number");
    }
}

const DAY: i64 = 86_400;

fn ledger_prune(db: &TestDb, now: i64, days: u64) -> Option<audit::retention::Pruned> {
    let keys = keys(db);
    let anchor = anchor(db);
    db.store.run_blocking(|c| audit::retention::prune(c, &keys, &anchor, now, days, None, &actor())).unwrap()
}

/// One event a day for ten days.
fn write_daily_events(store: &Store, actor: &Actor, days: i64) {
    store
        .run_blocking(|c| {
            for day in 0..days {
                let event = Event::new(actor, "test.daily", Outcome::Success)
                    .details(serde_json::json!({"day": day}));
                audit::record(c, T0 + day * DAY, &event)?;
            }
            Ok(())
        })
        .unwrap();
}

fn retention_prunes_behind_a_checkpoint_and_the_rest_verifies(db: &TestDb) {
    write_daily_events(&db.store, &actor(), 10);
    let now = T0 + 10 * DAY;
    let pruned = ledger_prune(db, now, 3).expect("seven days are old enough");
    assert_eq!((pruned.through_seq, pruned.pruned, pruned.kept_on_hold), (7, 7, 0));
    assert!(ledger_prune(db, now, 3).is_none(), "nothing new to prune");
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!((report.pruned_through, report.first_seq, report.events), (Some(7), Some(8), 4));
    let retention = db
        .store
        .run_blocking(|c| {
            audit::query::page(
                c,
                &audit::query::Filter { action: Some("audit.retention".into()), ..Default::default() }
                    .check()?,
                None,
                5,
            )
        })
        .unwrap();
    assert!(retention[0].details.contains("\"pruned\":7"), "{}", retention[0].details);

    // Retention never takes the newest event, whatever its age.
    let pruned = ledger_prune(db, now + 100 * DAY, 3).unwrap();
    assert_eq!(pruned.through_seq, 10, "the retention event itself (11) stays");
    assert!(verify(db).ok);

    // The event right after the cut is the chain's new start: removing it is caught, and so is
    // a cut without its checkpoint.
    sql(&db.store, &["DELETE FROM audit_events WHERE seq = 11"]);
    assert_problem(&verify(db), 11, ProblemKind::Deleted);
}

fn a_legal_hold_keeps_events_and_conversations(db: &TestDb) {
    use ayush_server::auth::{Role, users};
    use ayush_server::chat::store as chats;
    let admin = Actor { name: "admin".into(), method: Some("session".into()), ..Default::default() };
    let (carol, dave) = db
        .store
        .run_blocking(|c| {
            let new = |name| users::NewUser::person(name, Role::User, None);
            Ok((users::create(c, T0, &admin, &new("carol"))?, users::create(c, T0, &admin, &new("dave"))?))
        })
        .unwrap();
    let as_user =
        |u: &users::User| Actor { user_id: Some(u.id), name: u.username.clone(), ..Default::default() };
    write_daily_events(&db.store, &as_user(&carol), 5);
    write_daily_events(&db.store, &as_user(&dave), 5);
    let conversation = db.store.run_blocking(|c| chats::create(c, T0, carol.id, "plans", "m", "")).unwrap();

    let hold = db
        .store
        .run_blocking(|c| audit::retention::place(c, T0, &admin, "carol", "Matter 2026-114"))
        .unwrap();
    assert_eq!(hold.reason, "Matter 2026-114");
    let err = db.store.run_blocking(|c| audit::retention::place(c, T0, &admin, "carol", " ")).unwrap_err();
    assert!(err.message.contains("reason"), "{}", err.message);
    let err = db
        .store
        .run_blocking(|c| chats::delete(c, T0, &as_user(&carol), carol.id, conversation.id))
        .unwrap_err();
    assert!(err.message.contains("legal hold"), "{}", err.message);

    // Both users' events are old; only those by or about carol survive the cut: her five, her
    // account's creation and the hold itself (the refused deletion, the newest, is not pruned).
    let pruned = ledger_prune(db, T0 + 100 * DAY, 30).unwrap();
    assert_eq!((pruned.through_seq, pruned.kept_on_hold), (13, 7));
    let report = verify(db);
    assert!(report.ok, "{}", report.summary());
    assert_eq!(report.held, 7);
    let kept = db
        .store
        .run_blocking(|c| {
            audit::query::page(
                c,
                &audit::query::Filter { user: Some("carol".into()), ..Default::default() }.check()?,
                None,
                50,
            )
        })
        .unwrap();
    assert!(kept.iter().filter(|e| e.action == "test.daily").count() == 5);
    // A held event is still checked against its own MAC.
    sql(
        &db.store,
        &[
            "UPDATE audit_events SET details = '{}' WHERE action = 'test.daily' AND actor_name = 'carol' AND details LIKE '%\"day\":2%'",
        ],
    );
    let report = verify(db);
    assert_eq!(report.problem.map(|p| p.kind), Some(ProblemKind::Modified));

    db.store.run_blocking(|c| audit::retention::release(c, T0, &admin, "carol")).unwrap();
    db.store.run_blocking(|c| chats::delete(c, T0, &as_user(&carol), carol.id, conversation.id)).unwrap();
    let err = db.store.run_blocking(|c| audit::retention::release(c, T0, &admin, "carol")).unwrap_err();
    assert_eq!(err.kind, ayush_server::error::ErrorKind::NotFound);
}
