//! Collections, documents and the full-text index on every backend: SQLite always; PostgreSQL
//! when `AYUSH_TEST_DATABASE_URL` is set. The index is the real tantivy index in a temporary
//! directory, following the real change feed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_server::audit::Actor;
use ayush_server::auth::{Role, groups, users};
use ayush_server::config::KnowledgeConfig;
use ayush_server::error::ErrorKind;
use ayush_server::knowledge::collections::{self, Caller, NewCollection};
use ayush_server::knowledge::documents::{self, Status};
use ayush_server::knowledge::jobs;
use ayush_server::knowledge::{self, Knowledge, SharedKnowledge};
use ayush_server::store::{Conn, Store};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::TestDb;

const T0: i64 = 1_800_000_000;

macro_rules! knowledge_suite {
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

knowledge_suite!(
    collections_follow_their_rules,
    documents_are_stored_once_and_replaced_when_changed,
    the_index_follows_the_feed_and_recovers_by_itself,
    no_user_ever_receives_a_passage_they_may_not_read,
    jobs_are_claimed_once_cancelled_and_requeued_when_stale,
    one_long_document_cannot_fill_the_results,
);

fn actor() -> Actor {
    Actor { name: "test".into(), method: Some("test".into()), ..Default::default() }
}

fn add_user(c: &mut Conn, name: &str, role: Role) -> users::User {
    let new = users::NewUser::person(name, role, Some("$argon2id$x"));
    users::create(c, T0, &actor(), &new).unwrap()
}

fn shared(name: &str, readers: &[&str]) -> NewCollection {
    NewCollection {
        name: name.into(),
        readers: readers.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn personal(name: &str) -> NewCollection {
    NewCollection { name: name.into(), personal: true, ..Default::default() }
}

fn add(store: &Store, caller: Caller, collection: &str, source: &str, text: &str) -> documents::Ingested {
    let prepared = documents::prepare(source, text.as_bytes().to_vec()).unwrap();
    store
        .run_blocking(|c| {
            let row = collections::managed(c, caller, collection)?;
            documents::store(c, T0, &actor(), &row, &prepared)
        })
        .unwrap()
}

fn open_index(store: &Store, dir: &Path) -> SharedKnowledge {
    Arc::new(Knowledge::open(&KnowledgeConfig::default(), dir, store.clone()).unwrap())
}

fn caught_up(store: &Store, k: &Knowledge) {
    let head = store.run_blocking(knowledge::feed::head).unwrap();
    assert!(k.index.wait_for(head, Duration::from_secs(20)), "the index did not reach seq {head}");
}

fn search(
    store: &Store,
    k: &SharedKnowledge,
    caller: Caller,
    q: &str,
    names: &[&str],
) -> Result<Vec<knowledge::Hit>, ErrorKind> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let names = names.iter().map(|s| s.to_string()).collect();
    rt.block_on(knowledge::search(store, k, caller, q, names, knowledge::MAX_LIMIT, None)).map_err(|e| e.kind)
}

fn names(c: &mut Conn, caller: Caller) -> Vec<String> {
    collections::list(c, caller).unwrap().into_iter().map(|x| x.name).collect()
}

fn collections_follow_their_rules(db: &TestDb) {
    let store = &db.store;
    store
        .run_blocking(|c| {
            let admin = Caller::user(&add_user(c, "ada", Role::Admin));
            let bob = Caller::user(&add_user(c, "bob", Role::User));
            let eve = Caller::user(&add_user(c, "eve", Role::User));
            groups::create(c, T0, &actor(), "hr", "")?;
            groups::add_member(c, T0, &actor(), "hr", "bob")?;

            let err = collections::create(c, T0, &actor(), bob, shared("HR policies", &["hr"])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Forbidden, "only admins make shared collections");
            let hr = collections::create(c, T0, &actor(), admin, shared("HR policies", &["hr"]))?;
            assert_eq!((hr.personal, hr.readers.clone()), (false, vec!["hr".to_string()]));
            let err = collections::create(c, T0, &actor(), admin, shared("HR policies", &[])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Conflict);
            let err = collections::create(c, T0, &actor(), admin, shared("bad/name", &[])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::Validation);
            let err = collections::create(c, T0, &actor(), admin, shared("Wiki", &["nosuch"])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::NotFound);

            let notes = collections::create(c, T0, &actor(), bob, personal("bob notes"))?;
            assert_eq!((notes.personal, notes.owner.as_deref()), (true, Some("bob")));
            let err = collections::create(
                c,
                T0,
                &actor(),
                bob,
                NewCollection { readers: vec!["hr".into()], ..personal("x") },
            )
            .unwrap_err();
            assert_eq!(err.kind, ErrorKind::Validation, "personal collections take no readers");
            let err = collections::grant_read(c, T0, &actor(), "bob notes", "hr").unwrap_err();
            assert_eq!(err.kind, ErrorKind::Validation);
            let err =
                collections::create(c, T0, &actor(), Caller::local_admin(), personal("orphan")).unwrap_err();
            assert!(err.message.contains("--owner"), "{}", err.message);

            // Who sees what.

            assert_eq!(names(c, bob), ["HR policies", "bob notes"]);
            assert!(names(c, eve).is_empty());
            assert_eq!(names(c, admin), ["HR policies", "bob notes"], "admins list everything");
            assert!(
                collections::readable_ids(c, admin.user_id.unwrap())?.is_empty(),
                "but read only through groups"
            );
            assert_eq!(collections::readable(c, eve, "HR policies").unwrap_err().kind, ErrorKind::NotFound);
            assert_eq!(collections::readable(c, eve, "no such").unwrap_err().kind, ErrorKind::NotFound);

            // Who manages what.
            assert_eq!(collections::managed(c, bob, "HR policies").unwrap_err().kind, ErrorKind::Forbidden);
            assert_eq!(collections::managed(c, admin, "bob notes").unwrap_err().kind, ErrorKind::Forbidden);
            let unseen = collections::managed(c, eve, "HR policies").unwrap_err();
            assert_eq!(unseen.kind, ErrorKind::NotFound, "who cannot read it is not told it exists");
            collections::managed(c, bob, "bob notes")?;
            collections::managed(c, admin, "HR policies")?;

            collections::grant_read(c, T0, &actor(), "HR policies", "hr")?; // granted already: no-op
            collections::revoke_read(c, T0, &actor(), "HR policies", "hr")?;
            assert_eq!(names(c, bob), ["bob notes"]);
            let hidden = collections::remove(c, T0, &actor(), eve, "bob notes").unwrap_err();
            let absent = collections::remove(c, T0, &actor(), eve, "bob notez").unwrap_err();
            assert_eq!(hidden.kind, ErrorKind::NotFound, "unreadable looks absent");
            assert_eq!(hidden.message.replace("bob notes", "X"), absent.message.replace("bob notez", "X"));
            collections::remove(c, T0, &actor(), admin, "bob notes")?;
            assert!(names(c, bob).is_empty());
            Ok(())
        })
        .unwrap();
}

fn documents_are_stored_once_and_replaced_when_changed(db: &TestDb) {
    let store = &db.store;
    let admin = store.run_blocking(|c| Ok(Caller::user(&add_user(c, "ada", Role::Admin)))).unwrap();
    store.run_blocking(|c| collections::create(c, T0, &actor(), admin, shared("Wiki", &[]))).unwrap();
    let text = "# Setup\n\nInstall the toolchain.\n\n# Release\n\nTag the commit and push.\n";
    let first = add(store, admin, "Wiki", "eng/setup.md", text);
    assert_eq!(first.status, Status::Added);
    assert_eq!((first.document.format.as_str(), first.document.chunks), ("markdown", 2));
    let again = add(store, admin, "Wiki", "eng/setup.md", text);
    assert_eq!(again.status, Status::Unchanged);
    assert_eq!(again.document.id, first.document.id);
    let head = store.run_blocking(knowledge::feed::head).unwrap();

    let passage_ids = |id| -> Vec<i64> {
        let passages = store.run_blocking(|c| documents::passages_of(c, id)).unwrap();
        assert!(!passages.is_empty());
        passages.iter().map(|p| p.chunk_id).collect()
    };
    let before = passage_ids(first.document.id);
    // Both passages embedded, as the background task would.
    let vectors: Vec<(i64, Vec<f32>)> = before.iter().map(|&id| (id, vec![0.6, 0.8])).collect();
    store.run_blocking(|c| knowledge::vectors::keep(c, "m", &vectors)).unwrap();
    let edited = text.replace("Tag the commit and push.", "Tag the commit, then push.");
    let replaced = add(store, admin, "Wiki", "eng/setup.md", &edited);
    assert_eq!((replaced.status, replaced.document.id), (Status::Replaced, first.document.id));
    assert_ne!(passage_ids(first.document.id), before, "the passages were replaced");
    // The unchanged passage keeps its vector under its new id; only the edited one needs one.
    let missing = store.run_blocking(|c| knowledge::vectors::missing(c, "m", 10)).unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert!(missing[0].1.contains("Tag the commit, then push."), "{missing:?}");
    assert!(store.run_blocking(knowledge::feed::head).unwrap() > head, "the change is on the feed");
    assert_eq!(store.run_blocking(|c| documents::file(c, first.document.id)).unwrap(), edited.as_bytes());

    let err = documents::prepare("x.pdf", b"%PDF-1.4 ...".to_vec()).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Validation);
    let docs = store
        .run_blocking(|c| {
            let row = collections::managed(c, admin, "Wiki")?;
            documents::list(c, &row)
        })
        .unwrap();
    assert_eq!(docs.len(), 1);
    store
        .run_blocking(|c| {
            let row = collections::managed(c, admin, "Wiki")?;
            documents::remove(c, T0, &actor(), &row, first.document.id)?;
            documents::list(c, &row)
        })
        .map(|d| assert!(d.is_empty()))
        .unwrap();
}

fn the_index_follows_the_feed_and_recovers_by_itself(db: &TestDb) {
    let store = &db.store;
    let data = db.dir.path().join("data");
    let (admin, bob) = store
        .run_blocking(|c| {
            let admin = Caller::user(&add_user(c, "ada", Role::Admin));
            let bob = Caller::user(&add_user(c, "bob", Role::User));
            groups::create(c, T0, &actor(), "eng", "")?;
            groups::add_member(c, T0, &actor(), "eng", "bob")?;
            collections::create(c, T0, &actor(), admin, shared("Wiki", &["eng"]))?;
            Ok((admin, bob))
        })
        .unwrap();
    add(
        store,
        admin,
        "Wiki",
        "deploy.md",
        "# Deploying\n\nDeployments happen on Tuesdays after the freeze.\n",
    );
    let k = open_index(store, &data);
    caught_up(store, &k);
    let hits = search(store, &k, bob, "deploying tuesday", &[]).unwrap();
    assert_eq!(hits.len(), 1, "stemming finds 'Tuesdays' and 'Deploying'");
    assert_eq!((hits[0].collection.as_str(), hits[0].found.source.as_str()), ("Wiki", "deploy.md"));
    assert_eq!(hits[0].found.heading, "Deploying");
    assert!(!hits[0].found.highlights.is_empty());
    let phrase = search(store, &k, bob, "\"after the freeze\"", &[]).unwrap();
    assert_eq!(phrase.len(), 1);
    assert!(search(store, &k, bob, "\"freeze after\"", &[]).unwrap().is_empty(), "phrases keep their order");

    // Written while the index is closed (another replica, or a crash before its commit):
    // found after it opens again.
    drop(k);
    add(store, admin, "Wiki", "oncall.md", "The on-call rota changes every Monday.");
    let k = open_index(store, &data);
    caught_up(store, &k);
    assert_eq!(search(store, &k, bob, "rota", &[]).unwrap().len(), 1);

    // A damaged index is rebuilt from the database.
    drop(k);
    let index_dir = data.join("index");
    std::fs::write(index_dir.join("meta.json"), b"{ not json").unwrap();
    let k = open_index(store, &data);
    caught_up(store, &k);
    assert_eq!(search(store, &k, bob, "rota OR deploying", &[]).unwrap().len(), 2);
    assert_eq!(k.index.status().passages, 2);
    assert_eq!(k.index.rebuild().unwrap(), 2);

    // A removed collection leaves the index.
    store.run_blocking(|c| collections::remove(c, T0, &actor(), admin, "Wiki")).unwrap();
    caught_up(store, &k);
    assert_eq!(k.index.status().passages, 0);
    assert!(search(store, &k, bob, "rota", &[]).unwrap().is_empty());

    // Another process cannot take the index while this one holds it.
    let err = Knowledge::open(&KnowledgeConfig::default(), &data, store.clone()).err().unwrap();
    assert!(err.to_string().contains("in use"), "{err}");

    // An index another version of Ayush built (its commit says so) is rebuilt from the
    // database at start, not trusted: here it claims to hold the feed far beyond its end.
    store.run_blocking(|c| collections::create(c, T0, &actor(), admin, shared("Notes", &["eng"]))).unwrap();
    add(store, admin, "Notes", "handover.md", "The handover checklist lives in the wiki.");
    drop(k);
    {
        let index = tantivy::Index::open_in_dir(data.join("index")).unwrap();
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        writer.delete_all_documents().unwrap();
        let mut commit = writer.prepare_commit().unwrap();
        commit.set_payload(r#"{"version":0,"language":"english","seq":999999}"#);
        commit.commit().unwrap();
    }
    let k = open_index(store, &data);
    caught_up(store, &k);
    let head = store.run_blocking(knowledge::feed::head).unwrap();
    assert_eq!(k.index.status().applied_seq, head, "rebuilt up to the feed, not the old claim");
    assert_eq!(search(store, &k, bob, "handover", &[]).unwrap().len(), 1);

    // So is one built for another language (its stemmer and stop words differ).
    drop(k);
    let german = KnowledgeConfig { language: "german".into(), ..Default::default() };
    let k = Knowledge::open(&german, &data, store.clone()).unwrap();
    caught_up(store, &k);
    assert_eq!(k.index.status().passages, 1);
    assert_eq!(k.index.status().applied_seq, head);
}

/// Random users, groups, memberships and collections; after every change, each user's search
/// for a word every document holds returns exactly the collections the rules let them read,
/// and naming an unreadable collection is refused as if it did not exist.
fn no_user_ever_receives_a_passage_they_may_not_read(db: &TestDb) {
    let store = &db.store;
    let k = open_index(store, &db.dir.path().join("data"));
    let seed: u64 =
        std::env::var("AYUSH_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261126);
    let mut rng = StdRng::seed_from_u64(seed);
    let (n_users, n_groups, n_collections) = (6, 4, 10);
    let admin = store.run_blocking(|c| Ok(Caller::user(&add_user(c, "root", Role::Admin)))).unwrap();
    let users: Vec<Caller> = store
        .run_blocking(|c| {
            Ok((0..n_users).map(|i| Caller::user(&add_user(c, &format!("u{i}"), Role::User))).collect())
        })
        .unwrap();
    let mut member = vec![vec![false; n_groups]; n_users];
    store
        .run_blocking(|c| {
            for g in 0..n_groups {
                groups::create(c, T0, &actor(), &format!("g{g}"), "")?;
            }
            Ok(())
        })
        .unwrap();
    // Each collection: Some(owner) for personal, or None with its reader groups.
    let mut owner: Vec<Option<usize>> = Vec::new();
    let mut readers: Vec<BTreeSet<usize>> = Vec::new();
    for i in 0..n_collections {
        let name = format!("c{i}");
        let body = format!("Common word lighthouse. Unique marker zq{i}x.");
        if rng.gen_bool(0.4) {
            let o = rng.gen_range(0..n_users);
            store.run_blocking(|c| collections::create(c, T0, &actor(), users[o], personal(&name))).unwrap();
            add(store, users[o], &name, "doc.txt", &body);
            owner.push(Some(o));
            readers.push(BTreeSet::new());
        } else {
            let rs: BTreeSet<usize> = (0..n_groups).filter(|_| rng.gen_bool(0.35)).collect();
            let names: Vec<String> = rs.iter().map(|g| format!("g{g}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            store
                .run_blocking(|c| collections::create(c, T0, &actor(), admin, shared(&name, &refs)))
                .unwrap();
            add(store, admin, &name, "doc.txt", &body);
            owner.push(None);
            readers.push(rs);
        }
    }
    // A job into each collection, made by whoever filled it; a conversation for each user.
    let maker = |who: Caller, name: &str| Actor { user_id: who.user_id, name: name.into(), ..actor() };
    let job_of: Vec<i64> = (0..n_collections)
        .map(|i| {
            let (who, name) = match owner[i] {
                Some(o) => (users[o], format!("u{o}")),
                None => (admin, "root".to_string()),
            };
            let a = maker(who, &name);
            store
                .run_blocking(|c| {
                    let row = collections::managed(c, who, &format!("c{i}"))?;
                    jobs::enqueue(c, T0, &a, &row, &format!("job-of-c{i}.md"), b"# Job\n\nzq text")
                })
                .unwrap()
                .id
        })
        .collect();
    let conversations: Vec<i64> = users
        .iter()
        .map(|u| {
            let id = u.user_id.unwrap();
            store.run_blocking(|c| ayush_server::chat::store::create(c, T0, id, "t", "m", "")).unwrap().id
        })
        .collect();
    let mut attached: Vec<BTreeSet<String>> = vec![BTreeSet::new(); n_users];
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    // The passages a chat is given for a question every document answers.
    let cite = |user: Caller, conversation: i64| {
        let retrieved =
            ayush_server::chat::sources::retrieve(store, &k, user, conversation, "lighthouse", 1_000_000);
        rt.block_on(retrieved).unwrap()
    };
    let admin_jobs =
        store.run_blocking(|c| jobs::list(c, jobs::Scope::Admin { user_id: admin.user_id }, 1000)).unwrap();
    let shown: BTreeSet<String> = admin_jobs.iter().map(|j| j.collection.clone()).collect();
    let shared_names: BTreeSet<String> =
        (0..n_collections).filter(|&i| owner[i].is_none()).map(|i| format!("c{i}")).collect();
    assert_eq!(shown, shared_names, "admins see the jobs of shared collections, never of personal ones");
    caught_up(store, &k);
    let (mut allowed, mut refused, mut citations, mut stale) = (0, 0, 0, 0);
    for round in 0..12 {
        // Change one thing at random: a membership, or a collection's readers.
        let (u, g) = (rng.gen_range(0..n_users), rng.gen_range(0..n_groups));
        store
            .run_blocking(|c| {
                if rng.gen_bool(0.6) {
                    if member[u][g] {
                        groups::remove_member(c, T0, &actor(), &format!("g{g}"), &format!("u{u}"))?;
                    } else {
                        groups::add_member(c, T0, &actor(), &format!("g{g}"), &format!("u{u}"))?;
                    }
                    member[u][g] = !member[u][g];
                } else {
                    let shared_ones: Vec<usize> =
                        (0..n_collections).filter(|&i| owner[i].is_none()).collect();
                    if let Some(&i) = shared_ones.get(rng.gen_range(0..shared_ones.len().max(1))) {
                        if readers[i].remove(&g) {
                            collections::revoke_read(c, T0, &actor(), &format!("c{i}"), &format!("g{g}"))?;
                        } else {
                            collections::grant_read(c, T0, &actor(), &format!("c{i}"), &format!("g{g}"))?;
                            readers[i].insert(g);
                        }
                    }
                }
                Ok(())
            })
            .unwrap();
        // Admins read shared collections, never someone's personal one.
        let admins: BTreeSet<String> =
            search(store, &k, admin, "lighthouse", &[]).unwrap().into_iter().map(|h| h.collection).collect();
        assert!(admins.is_subset(&shared_names), "seed {seed}: the admin read {admins:?}");
        for (ui, &user) in users.iter().enumerate() {
            let may: BTreeSet<String> = (0..n_collections)
                .filter(|&i| match owner[i] {
                    Some(o) => o == ui,
                    None => readers[i].iter().any(|&g| member[ui][g]),
                })
                .map(|i| format!("c{i}"))
                .collect();
            let got: BTreeSet<String> = search(store, &k, user, "lighthouse", &[])
                .unwrap()
                .into_iter()
                .map(|h| h.collection)
                .collect();
            assert_eq!(got, may, "seed {seed}, round {round}, user u{ui}");
            let listed: BTreeSet<String> =
                store.run_blocking(|c| Ok(names(c, user))).unwrap().into_iter().collect();
            assert_eq!(listed, may, "seed {seed}, round {round}: u{ui}'s collection list");

            // Chat with collections: attachments made while readable stay attached after access
            // is lost, and must yield nothing then.
            stale += usize::from(!attached[ui].is_subset(&may));
            if attached[ui].is_subset(&may) {
                let want: Vec<String> = attached[ui].union(&may).cloned().collect();
                let conv = conversations[ui];
                store.run_blocking(|c| ayush_server::chat::sources::attach(c, user, conv, &want)).unwrap();
                attached[ui] = want.into_iter().collect();
            }
            let cited = cite(user, conversations[ui]);
            citations += cited.len();
            for citation in &cited {
                assert!(
                    may.contains(&citation.collection),
                    "seed {seed}, round {round}: u{ui} cited {citation:?}"
                );
                let marker =
                    citation.text.split("zq").nth(1).and_then(|t| t.split('x').next()).unwrap_or_default();
                assert!(
                    may.contains(&format!("c{marker}")),
                    "seed {seed}: u{ui} was given {}",
                    citation.text
                );
            }

            // Jobs and downloads.
            let theirs =
                store.run_blocking(|c| jobs::list(c, jobs::Scope::Own(user.user_id.unwrap()), 1000)).unwrap();
            assert!(
                theirs.iter().all(|j| may.contains(&j.collection)),
                "seed {seed}: u{ui} listed {theirs:?}"
            );
            for (i, &job) in job_of.iter().enumerate() {
                let seen = store.run_blocking(|c| jobs::visible(c, user, job));
                assert_eq!(seen.is_ok(), owner[i] == Some(ui), "seed {seed}: u{ui} and the job into c{i}");
                let download = store.run_blocking(|c| {
                    let row = collections::readable(c, user, &format!("c{i}"))?;
                    let doc = documents::list(c, &row)?.into_iter().next().expect("a document");
                    documents::file(c, doc.id)
                });
                match download {
                    Ok(_) => {
                        assert!(may.contains(&format!("c{i}")), "seed {seed}: u{ui} downloaded from c{i}")
                    }
                    Err(e) => {
                        assert_eq!(e.kind, ErrorKind::NotFound);
                        assert!(!may.contains(&format!("c{i}")), "seed {seed}: u{ui} refused c{i}");
                    }
                }
            }
            allowed += may.len();
            refused += n_collections - may.len();
            for i in 0..n_collections {
                let name = format!("c{i}");
                let marker = format!("zq{i}x");
                let named = search(store, &k, user, &marker, &[&name]);
                let everywhere = search(store, &k, user, &marker, &[]).unwrap();
                // Query syntax cannot widen the filter either.
                let sneaky =
                    search(store, &k, user, &format!("{marker} OR collection:{}", i + 1), &[]).unwrap();
                if may.contains(&name) {
                    assert_eq!(named.unwrap().len(), 1, "seed {seed}, round {round}: u{ui} reads {name}");
                    assert_eq!(everywhere.len(), 1);
                } else {
                    assert_eq!(named.unwrap_err(), ErrorKind::NotFound, "seed {seed}: u{ui} named {name}");
                    assert!(
                        everywhere.is_empty(),
                        "seed {seed}, round {round}: u{ui} got a passage of {name}"
                    );
                    assert!(sneaky.iter().all(|h| may.contains(&h.collection)), "seed {seed}: {sneaky:?}");
                }
            }
        }
    }
    // Finally everyone leaves every group: chats keep their attachments, and cite only what
    // their user still reads (their personal collections).
    for (ui, &user) in users.iter().enumerate() {
        for g in (0..n_groups).filter(|&g| member[ui][g]) {
            store
                .run_blocking(|c| groups::remove_member(c, T0, &actor(), &format!("g{g}"), &format!("u{ui}")))
                .unwrap();
        }
        let own: BTreeSet<String> =
            (0..n_collections).filter(|&i| owner[i] == Some(ui)).map(|i| format!("c{i}")).collect();
        stale += usize::from(!attached[ui].is_subset(&own));
        let cited = cite(user, conversations[ui]);
        assert!(cited.iter().all(|c| own.contains(&c.collection)), "seed {seed}: u{ui} cited {cited:?}");
    }
    assert!(allowed > 50 && refused > 50, "the cases cover both sides: {allowed} allowed, {refused} refused");
    assert!(citations > 20 && stale > 0, "chats cited {citations} passages, {stale} times with lost access");
}

fn jobs_are_claimed_once_cancelled_and_requeued_when_stale(db: &TestDb) {
    let store = &db.store;
    let admin = store.run_blocking(|c| Ok(Caller::user(&add_user(c, "ada", Role::Admin)))).unwrap();
    let row = store
        .run_blocking(|c| {
            collections::create(c, T0, &actor(), admin, shared("Wiki", &[]))?;
            collections::managed(c, admin, "Wiki")
        })
        .unwrap();
    let (a, b) = store
        .run_blocking(|c| {
            let a = jobs::enqueue(c, T0, &actor(), &row, "a.md", b"# A\n\nAlpha text.")?;
            let b = jobs::enqueue(c, T0, &actor(), &row, "b.md", b"# B\n\nBeta text.")?;
            Ok((a, b))
        })
        .unwrap();
    assert_eq!((a.status.as_str(), b.status.as_str()), ("queued", "queued"));

    // Two workers claim two different jobs, oldest first; a third finds none.
    let first = store.run_blocking(|c| jobs::claim(c, T0 + 1, "r1")).unwrap().unwrap();
    let second = store.run_blocking(|c| jobs::claim(c, T0 + 1, "r1")).unwrap().unwrap();
    assert_eq!((first.id, second.id), (a.id, b.id));
    assert_eq!(first.source, "a.md");
    assert_eq!(first.actor.name, "test");
    assert!(store.run_blocking(|c| jobs::claim(c, T0 + 1, "r1")).unwrap().is_none());

    // The first completes; the second is cancelled while running and stores nothing.
    let prepared = documents::prepare(&first.source, first.bytes.clone()).unwrap();
    let stored = store.run_blocking(|c| jobs::complete(c, T0 + 2, &first, &prepared)).unwrap().unwrap();
    assert_eq!(stored.status, Status::Added);
    let cancelling = store.run_blocking(|c| jobs::cancel(c, T0 + 2, b.id)).unwrap();
    assert_eq!(cancelling.status, "running");
    let prepared = documents::prepare(&second.source, second.bytes.clone()).unwrap();
    assert!(store.run_blocking(|c| jobs::complete(c, T0 + 3, &second, &prepared)).unwrap().is_none());
    let done = store.run_blocking(|c| jobs::get(c, a.id)).unwrap();
    let cancelled = store.run_blocking(|c| jobs::get(c, b.id)).unwrap();
    assert_eq!((done.status.as_str(), done.outcome.as_deref()), ("done", Some("added")));
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(store.run_blocking(|c| documents::list(c, &row)).unwrap().len(), 1);
    assert_eq!(store.run_blocking(|c| jobs::cancel(c, T0 + 4, a.id)).unwrap_err().kind, ErrorKind::Conflict);

    // A job stays with its replica while it beats; once the beats stop (the replica died) it
    // goes back to the queue, another replica takes it, and the first can no longer finish it.
    let c_job = store.run_blocking(|c| jobs::enqueue(c, T0, &actor(), &row, "c.md", b"text")).unwrap();
    let claimed = store.run_blocking(|c| jobs::claim(c, T0 + 5, "r1")).unwrap().unwrap();
    assert_eq!((claimed.id, claimed.replica.as_str()), (c_job.id, "r1"));
    let beating = T0 + 5 + jobs::STALE_SECS;
    assert!(store.run_blocking(|c| jobs::beat(c, beating, c_job.id, "r1")).unwrap());
    assert!(store.run_blocking(|c| jobs::claim(c, beating + 1, "r2")).unwrap().is_none(), "it beats");
    let dead = beating + jobs::STALE_SECS + 1;
    let again = store.run_blocking(|c| jobs::claim(c, dead, "r2")).unwrap().unwrap();
    assert_eq!((again.id, again.replica.as_str()), (c_job.id, "r2"));
    assert!(!store.run_blocking(|c| jobs::beat(c, dead + 1, c_job.id, "r1")).unwrap(), "r1 lost it");
    let prepared = documents::prepare(&claimed.source, claimed.bytes.clone()).unwrap();
    assert!(store.run_blocking(|c| jobs::complete(c, dead + 2, &claimed, &prepared)).unwrap().is_none());
    assert_eq!(store.run_blocking(|c| jobs::get(c, c_job.id)).unwrap().status, "running", "still r2's");
    store.run_blocking(|c| jobs::fail(c, T0 + 700, c_job.id, "c.md: broken")).unwrap();
    let failed = store.run_blocking(|c| jobs::get(c, c_job.id)).unwrap();
    assert_eq!((failed.status.as_str(), failed.error.as_deref()), ("failed", Some("c.md: broken")));
    let listed = store.run_blocking(|c| jobs::list(c, jobs::Scope::Collection(row.id), 10)).unwrap();
    assert_eq!(listed.iter().map(|j| j.id).collect::<Vec<_>>(), [c_job.id, b.id, a.id], "newest first");
}

/// A long page whose every passage matches takes one place among the results (by default), so
/// the short document that also answers is on the first page; chat sources may take two.
fn one_long_document_cannot_fill_the_results(db: &TestDb) {
    let store = &db.store;
    let admin = store
        .run_blocking(|c| {
            let admin = Caller::user(&add_user(c, "ada", Role::Admin));
            collections::create(c, T0, &actor(), admin, personal("Mine"))?;
            Ok(admin)
        })
        .unwrap();
    let long: String = (0..40)
        .map(|i| {
            format!(
                "## Widgets, part {i}\n\nThe widget registry keeps widget {i} and its widget settings.\n\n"
            )
        })
        .collect();
    add(store, admin, "Mine", "widgets.md", &format!("# Widget reference\n\n{long}"));
    add(store, admin, "Mine", "faq.md", "# Questions\n\nHow do I reset a widget? Restart the registry.");
    let k = open_index(store, &db.dir.path().join("data"));
    caught_up(store, &k);
    let sources = |hits: Vec<knowledge::Hit>| hits.into_iter().map(|h| h.found.source).collect::<Vec<_>>();
    let found = sources(search(store, &k, admin, "widget", &[]).unwrap());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.contains(&"faq.md".to_string()), "{found:?}");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let two = rt
        .block_on(knowledge::search(store, &k, admin, "widget", vec![], 10, Some(2)))
        .map_err(|e| e.kind)
        .unwrap();
    assert_eq!(sources(two).iter().filter(|s| *s == "widgets.md").count(), 2);
    let all = rt.block_on(knowledge::search(store, &k, admin, "widget", vec![], 10, Some(0))).unwrap();
    assert_eq!(all.len(), 10, "uncapped, the long page fills the results");
}
