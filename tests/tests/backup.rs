//! Backup and restore of a populated installation, on SQLite and on PostgreSQL: taken while the
//! server runs, restored into a new place, and compared; and the refusals that come before a
//! restore changes anything (wrong passphrase, an altered file, a newer schema).

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{CtlOutput, GEMMA_FILE, Server, fresh_database, run_ctl, test_model};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const PW: &str = "backup test password 1";
const PASSPHRASE: &str = "a long backup passphrase";

/// Users, groups, a key, a collection with a document, a model and a conversation.
fn populate(server: &Server) -> String {
    server.create_user("root", "admin", PW);
    server.create_user("mia", "user", PW);
    assert!(server.ctl_local(&["group", "create", "sales"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "sales", "mia"], None).ok);
    let model = test_model(GEMMA_FILE);
    let imported = server.ctl_local(&["models", "import", model.to_str().unwrap(), "--name", "gemma"], None);
    assert!(imported.ok, "{}", imported.stderr);
    let token = server.token_for("root");
    let mut root = server.client();
    assert_eq!(root.login("root", PW).status, 200);
    let made = root.send_json("POST", "/api/collections", &json!({"name": "handbook", "readers": ["sales"]}));
    assert_eq!(made.status, 201, "{}", made.body);
    let up = server.client().raw(
        "POST",
        "/api/collections/handbook/documents?source=leave.txt&wait=true",
        &[("Authorization", &format!("Bearer {token}")), ("Content-Type", "text/plain")],
        "Parental leave is sixteen weeks at full pay.",
    );
    assert!(up.status < 300, "{}", up.body);
    let mut mia = server.client();
    assert_eq!(mia.login("mia", PW).status, 200);
    let conv = mia.send_json("POST", "/api/conversations", &json!({"model": "gemma", "title": "Leave"}));
    assert!(conv.status < 300, "{}", conv.body);
    token
}

/// What an admin sees of the installation, through `ayushctl --local`.
fn state(ctl: &dyn Fn(&[&str]) -> CtlOutput) -> Value {
    let mut out = serde_json::Map::new();
    for (name, args) in [
        ("users", &["user", "list"][..]),
        ("groups", &["group", "list"]),
        ("keys", &["keys", "list"]),
        ("collections", &["collections", "list"]),
        ("documents", &["collections", "documents", "handbook"]),
        ("models", &["models", "list"]),
    ] {
        let mut full = vec!["-o", "json"];
        full.extend_from_slice(args);
        let r = ctl(&full);
        assert!(r.ok, "{name}: {}", r.stderr);
        out.insert(name.into(), r.json());
    }
    Value::Object(out)
}

fn ctl_on(dir: &Path, config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> CtlOutput {
    let dir = dir.to_string_lossy().to_string();
    let mut full = vec!["--local", "--data-dir", dir.as_str()];
    let config = config.map_or(ayush_tests::NO_CONFIG_FILE.to_string(), |c| c.to_string_lossy().to_string());
    full.extend(["--config", config.as_str()]);
    full.extend_from_slice(args);
    run_ctl(&full, stdin, &[])
}

/// The restored installation answers as the original did: the same state, the same people
/// signing in with the same passwords and keys, the document found, the conversation there, and
/// an audit log that verifies with the restore recorded in it.
fn check_restored(restored: &Server, before: &Value, token: &str) {
    let after = state(&|args: &[&str]| restored.ctl_local(args, None));
    assert_eq!(&after, before, "the restored installation differs");
    let mut mia = restored.client();
    assert_eq!(mia.login("mia", PW).status, 200, "mia's password survives");
    let hits = mia.get("/api/search?q=parental+leave").json();
    assert_eq!(hits["hits"][0]["source"], "leave.txt", "{hits}");
    let convs = mia.get("/api/conversations").json();
    assert!(convs.to_string().contains("Leave"), "{convs}");
    let me = restored.client().raw("GET", "/api/me", &[("Authorization", &format!("Bearer {token}"))], "");
    assert_eq!(me.status, 200, "root's API key still works: {}", me.body);
    let verified = restored.ctl_local(&["audit", "verify"], None);
    assert!(verified.ok, "{}{}", verified.stdout, verified.stderr);
    let restores = restored.ctl_local(&["audit", "export", "--action", "backup.restore"], None);
    assert!(restores.ok, "{}", restores.stderr);
    assert_eq!(restores.stdout.lines().count(), 1, "the restore is recorded once: {}", restores.stdout);
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_running_sqlite_installation_round_trips_through_a_backup() {
    let server = Server::start();
    let token = populate(&server);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("ayush.backup");
    let file_s = file.to_str().unwrap();

    // Taken through the API while the server serves.
    let made = server.ctl_remote(
        &token,
        &["-o", "json", "backup", "create", "--out", file_s, "--passphrase-stdin"],
        Some(PASSPHRASE),
    );
    assert!(made.ok, "{}", made.stderr);
    let made = made.json();
    assert_eq!((made["backend"].as_str(), made["secrets"].as_bool()), (Some("sqlite"), Some(true)), "{made}");
    assert_eq!(made["models"], json!(["gemma"]));
    let creates = server.ctl_local(&["audit", "export", "--action", "backup.create"], None);
    assert_eq!(creates.stdout.lines().count(), 1, "the backup is recorded: {}", creates.stdout);
    let before = state(&|args: &[&str]| server.ctl_local(args, None));
    let inspected = run_ctl(&["-o", "json", "backup", "inspect", file_s], None, &[]);
    assert!(inspected.ok, "{}", inspected.stderr);
    assert!(inspected.json()["entries"].as_array().unwrap().len() >= 3);

    // Refusals, each before anything is written.
    let target = tempfile::tempdir().unwrap();
    let wrong = ctl_on(
        target.path(),
        None,
        &["backup", "restore", file_s, "--passphrase-stdin"],
        Some("not the passphrase"),
    );
    assert!(!wrong.ok && wrong.stderr.contains("wrong passphrase"), "{}", wrong.stderr);
    let altered = work.path().join("altered.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 3;
    bytes[middle] ^= 0x55;
    std::fs::write(&altered, bytes).unwrap();
    let refused = ctl_on(
        target.path(),
        None,
        &["backup", "restore", altered.to_str().unwrap(), "--passphrase-stdin"],
        Some(PASSPHRASE),
    );
    assert!(!refused.ok, "an altered backup was restored");
    assert!(
        refused.stderr.contains("checksum")
            || refused.stderr.contains("damaged")
            || refused.stderr.contains("not an Ayush backup"),
        "{}",
        refused.stderr
    );
    let newer = newer_schema_backup(work.path());
    let refused = ctl_on(target.path(), None, &["backup", "restore", newer.to_str().unwrap()], None);
    assert!(!refused.ok && refused.stderr.contains("newer"), "{}", refused.stderr);
    let running = server.ctl_local(&["backup", "restore", file_s, "--passphrase-stdin"], Some(PASSPHRASE));
    assert!(!running.ok && running.stderr.contains("stop the server"), "{}", running.stderr);
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0, "the refusals wrote nothing");

    let restored = ctl_on(
        target.path(),
        None,
        &["-o", "json", "backup", "restore", file_s, "--passphrase-stdin"],
        Some(PASSPHRASE),
    );
    assert!(restored.ok, "{}", restored.stderr);
    let report = restored.json();
    assert!(report["audit"].as_str().unwrap().contains("intact"), "{report}");
    assert_eq!(
        report["models_missing_files"],
        json!(["gemma"]),
        "model files travel with --with-models only"
    );
    // The admin copies the model file, as the restore's report says.
    std::fs::copy(test_model(GEMMA_FILE), target.path().join("models/gemma.gguf")).unwrap();
    let restored = Server::start_in(target, &[]);
    check_restored(&restored, &before, &token);
}

#[test]
#[cfg_attr(not(peer_postgres), ignore = "needs PostgreSQL: set AYUSH_TEST_DATABASE_URL")]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn a_running_postgresql_installation_round_trips_through_a_backup() {
    let (source, dest) = (fresh_database("backup_from"), fresh_database("backup_to"));
    let server = Server::start_with_config(&format!("[database]\nurl = \"{}\"\n", source.url));
    let token = populate(&server);
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("ayush.backup");
    let file_s = file.to_str().unwrap();
    // Taken on the data directory, with the model files, while the server serves.
    let made = server.ctl_local(
        &["-o", "json", "backup", "create", "--out", file_s, "--passphrase-stdin", "--with-models"],
        Some(PASSPHRASE),
    );
    assert!(made.ok, "{}", made.stderr);
    assert_eq!(made.json()["model_files"], json!(["gemma"]));
    let before = state(&|args: &[&str]| server.ctl_local(args, None));

    let target = tempfile::tempdir().unwrap();
    let config = target.path().join("ayush.toml");
    std::fs::write(&config, format!("[database]\nurl = \"{}\"\n", dest.url)).unwrap();
    // The source database is not empty: restoring into it is refused.
    let occupied = work.path().join("occupied.toml");
    std::fs::write(&occupied, format!("[database]\nurl = \"{}\"\n", source.url)).unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("secrets")).unwrap();
    std::fs::write(other.path().join("secrets/kept"), "an admin's file").unwrap();
    let refused = ctl_on(
        other.path(),
        Some(&occupied),
        &["backup", "restore", file_s, "--passphrase-stdin"],
        Some(PASSPHRASE),
    );
    assert!(!refused.ok && refused.stderr.contains("empty database"), "{}", refused.stderr);
    let left: Vec<_> = std::fs::read_dir(other.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["secrets"], "the refusal changed nothing in the data directory");
    assert!(other.path().join("secrets/kept").exists());

    let restored = ctl_on(
        target.path(),
        Some(&config),
        &["-o", "json", "backup", "restore", file_s, "--passphrase-stdin"],
        Some(PASSPHRASE),
    );
    assert!(restored.ok, "{}", restored.stderr);
    let report = restored.json();
    assert!(report["rows"].as_u64().unwrap() > 10, "{report}");
    assert_eq!(report["models_missing_files"], json!([]));
    let restored = Server::start_in(target, &[]);
    check_restored(&restored, &before, &token);
    // New rows get new ids after the restored ones (the sequences moved on).
    let mut root = restored.client();
    assert_eq!(root.login("root", PW).status, 200);
    let r = root.send_json("POST", "/api/admin/groups", &json!({"name": "after-restore"}));
    assert_eq!(r.status, 201, "{}", r.body);
}

/// A backup that claims a schema from the future (made with the same writer as real ones).
fn newer_schema_backup(dir: &Path) -> PathBuf {
    use ayush_server::backup::archive::{FORMAT, FORMAT_VERSION, Manifest, Writer};
    let path = dir.join("newer.backup");
    let mut writer = Writer::create(&path).unwrap();
    writer.add_bytes("database/ayush.db", b"not really").unwrap();
    writer
        .finish(Manifest {
            format: FORMAT.into(),
            format_version: FORMAT_VERSION,
            ayush_version: "9.0.0".into(),
            created_at: 0,
            backend: "sqlite".into(),
            schema_version: "99990101000000".into(),
            audit_head_seq: 0,
            secrets: false,
            models: vec![],
            model_files: vec![],
            entries: vec![],
        })
        .unwrap();
    path
}
