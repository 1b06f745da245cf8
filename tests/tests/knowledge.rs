//! Company knowledge end to end, against the real `ayush` and `ayushctl` binaries: collections
//! made and filled with `ayushctl`, files of each supported format extracted, search through
//! `/api/search` answering each user only what their groups (or ownership) let them read,
//! originals downloaded, the index rebuilt; and a server killed with SIGKILL during an ingest
//! that loses no acknowledged document and finishes the job when the ingest is run again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{Client, Reply, Server, bin_path};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const PW: &str = "correct horse battery staple";

fn ctl_ok(server: &Server, token: &str, args: &[&str]) -> Value {
    let mut full = vec!["-o", "json"];
    full.extend_from_slice(args);
    let out = server.ctl_remote(token, &full, None);
    assert!(out.ok, "ayushctl {args:?}: {}", out.stderr);
    if out.stdout.trim().is_empty() { Value::Null } else { out.json() }
}

fn signed_in(server: &Server, user: &str) -> Client {
    let mut c = server.client();
    assert_eq!(c.login(user, PW).status, 200);
    c
}

fn search(c: &mut Client, query: &str) -> Reply {
    c.get(&format!("/api/search?{query}"))
}

fn hit_sources(reply: &Reply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["source"].as_str().unwrap().to_string())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn collections_are_filled_with_ayushctl_and_searched_within_each_users_rights() {
    let server = Server::start();
    for (user, role) in [("ada", "admin"), ("bob", "user"), ("eve", "user")] {
        server.create_user(user, role, PW);
    }
    for args in [&["group", "create", "hr"][..], &["group", "add-member", "hr", "bob"]] {
        assert!(server.ctl_local(args, None).ok);
    }
    let token = server.token_for("ada");
    let made = ctl_ok(&server, &token, &["collections", "create", "HR policies", "--group", "hr"]);
    assert_eq!((made["personal"].clone(), made["readers"].clone()), (json!(false), json!(["hr"])));

    let docs = tempfile::tempdir().unwrap();
    let handbook = docs.path().join("handbook");
    write(
        &handbook,
        "leave.md",
        "# Leave policy\n\n## Parental leave\n\nEvery parent may take twenty-six weeks of parental leave at full pay.\n\n\
         ## Sick leave\n\nTell your manager before ten in the morning.\n",
    );
    write(
        &handbook,
        "travel/expenses.html",
        "<!DOCTYPE html><html><head><title>Travel expenses</title></head><body><h1>Travel</h1>\
         <p>The per diem for meals abroad is forty-five euros.</p><table><tr><th>City</th><th>Hotel cap</th></tr>\
         <tr><td>Zurich</td><td>240</td></tr></table></body></html>",
    );
    write(&handbook, "holidays.csv", "Date,Holiday\n2026-12-25,Christmas Day\n2026-05-01,Labour Day\n");
    write(&handbook, "notes.txt", "Parking\n\nThe car park closes at midnight.\n");
    write(&handbook, "scan.pdf", "%PDF-1.7\n%binary\n");

    // A dry run says what would happen, and stores nothing.
    let out = server.ctl_remote(
        &token,
        &["-o", "json", "collections", "ingest", "HR policies", "--dry-run", handbook.to_str().unwrap()],
        None,
    );
    assert!(!out.ok, "a file that cannot be read fails the run");
    let dry = out.json();
    assert_eq!(
        (dry["added"].as_u64(), dry["failed"].as_u64(), dry["dry_run"].as_bool()),
        (Some(4), Some(1), Some(true))
    );
    assert!(out.stderr.contains("handbook/leave.md: would add (markdown, 2 passages)"), "{}", out.stderr);
    assert!(out.stderr.contains("scan.pdf: failed"), "{}", out.stderr);
    assert_eq!(ctl_ok(&server, &token, &["collections", "documents", "HR policies"]), json!([]));

    // The real run adds the four readable files; the PDF fails alone.
    let out = server.ctl_remote(
        &token,
        &["-o", "json", "collections", "ingest", "HR policies", handbook.to_str().unwrap()],
        None,
    );
    assert!(!out.ok);
    let run = out.json();
    assert_eq!((run["added"].as_u64(), run["failed"].as_u64()), (Some(4), Some(1)), "{run}");
    assert!(run["failures"][0]["error"].as_str().unwrap().contains("PDF"), "{run}");
    std::fs::remove_file(handbook.join("scan.pdf")).unwrap();

    // Again: nothing is sent twice. A changed file replaces its document.
    let again =
        ctl_ok(&server, &token, &["collections", "ingest", "HR policies", handbook.to_str().unwrap()]);
    assert_eq!((again["unchanged"].as_u64(), again["added"].as_u64()), (Some(4), Some(0)), "{again}");
    write(&handbook, "notes.txt", "Parking\n\nThe car park closes at eleven at night.\n");
    let changed =
        ctl_ok(&server, &token, &["collections", "ingest", "HR policies", handbook.to_str().unwrap()]);
    assert_eq!(
        (changed["replaced"].as_u64(), changed["unchanged"].as_u64()),
        (Some(1), Some(3)),
        "{changed}"
    );
    let listed = ctl_ok(&server, &token, &["collections", "documents", "HR policies"]);
    let sources: Vec<&str> =
        listed.as_array().unwrap().iter().map(|d| d["source"].as_str().unwrap()).collect();
    assert_eq!(
        sources,
        ["handbook/holidays.csv", "handbook/leave.md", "handbook/notes.txt", "handbook/travel/expenses.html"]
    );
    let formats: Vec<&str> =
        listed.as_array().unwrap().iter().map(|d| d["format"].as_str().unwrap()).collect();
    assert_eq!(formats, ["csv", "markdown", "text", "html"]);

    // Bob reads HR policies through his group: stemmed words, phrases, highlights, headings.
    let mut bob = signed_in(&server, "bob");
    let reply = search(&mut bob, "q=parental+leaves");
    assert_eq!(hit_sources(&reply)[0], "handbook/leave.md");
    let hit = &reply.json()["hits"][0];
    assert_eq!(
        (hit["collection"].as_str(), hit["heading"].as_str()),
        (Some("HR policies"), Some("Leave policy › Parental leave"))
    );
    let snippet = hit["snippet"].as_str().unwrap();
    let [start, end] = [
        hit["highlights"][0][0].as_u64().unwrap() as usize,
        hit["highlights"][0][1].as_u64().unwrap() as usize,
    ];
    let marked = snippet[start..end].to_lowercase();
    assert!(["parent", "parental", "leave"].contains(&marked.as_str()), "{marked:?} in {snippet}");
    assert_eq!(hit_sources(&search(&mut bob, "q=%22per+diem%22")), ["handbook/travel/expenses.html"]);
    assert_eq!(hit_sources(&search(&mut bob, "q=zurich+hotel")), ["handbook/travel/expenses.html"]);
    assert_eq!(
        hit_sources(&search(&mut bob, "q=christmas&collection=HR%20policies&limit=3")),
        ["handbook/holidays.csv"]
    );
    assert_eq!(
        hit_sources(&search(&mut bob, "q=eleven")),
        ["handbook/notes.txt"],
        "the replaced text is found"
    );
    assert!(hit_sources(&search(&mut bob, "q=midnight")).is_empty(), "the old text is gone");

    // The original, as a download, for readers only.
    let id = listed[1]["id"].as_i64().unwrap();
    let file = bob.get(&format!("/api/collections/HR%20policies/documents/{id}/file"));
    assert_eq!(file.status, 200);
    assert!(file.body.starts_with("# Leave policy"));
    assert!(file.header("content-disposition").unwrap().starts_with("attachment; filename=\"leave.md\""));

    // Eve is in no group: nothing, and the collection does not exist for her.
    let mut eve = signed_in(&server, "eve");
    assert!(hit_sources(&search(&mut eve, "q=parental+leave")).is_empty());
    // The search page answers from the same filtered query.
    let page = eve.get("/search?q=parental+leave").body;
    assert!(page.contains("Nothing found") && !page.contains("leave.md"), "{page}");
    let page = bob.get("/search?q=parental+leave").body;
    assert!(page.contains("handbook/leave.md") && page.contains("<mark>"), "{page}");
    let named = search(&mut eve, "q=parental&collection=HR%20policies");
    assert_eq!((named.status, named.error_code().as_str()), (404, "not_found"));
    assert_eq!(eve.get(&format!("/api/collections/HR%20policies/documents/{id}/file")).status, 404);
    assert_eq!(eve.get("/api/collections").json(), json!([]));
    // The admin manages the collection but is not in hr: admins read through groups too.
    let mut ada = signed_in(&server, "ada");
    assert!(hit_sources(&search(&mut ada, "q=parental+leave")).is_empty());
    for bad in ["q=", "q=x&limit=0", "q=x&limit=500", "q=x&bogus=1", "collection=x"] {
        let r = search(&mut bob, bad);
        assert!(matches!(r.status, 400 | 422), "{bad}: {} {}", r.status, r.body);
    }

    // A personal collection, made on the web API, filled with an API key: its owner alone reads it.
    let made = bob.send_json("POST", "/api/collections", &json!({"name": "bob notes", "personal": true}));
    assert_eq!(made.status, 201, "{}", made.body);
    let shared = bob.send_json("POST", "/api/collections", &json!({"name": "bob wiki", "readers": ["hr"]}));
    assert_eq!(shared.status, 403, "only admins make shared collections");
    let bob_key = server.key_signed_in("bob", PW);
    let mut api = server.client();
    let auth = format!("Bearer {bob_key}");
    let up = api.raw(
        "POST",
        "/api/collections/bob%20notes/documents?source=ideas.txt",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        "Idea: a quarterly hackathon in the lighthouse.",
    );
    assert_eq!(up.status, 201, "{}", up.body);
    assert_eq!(up.json()["status"], "added");
    let same = api.raw(
        "POST",
        "/api/collections/bob%20notes/documents?source=ideas.txt",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        "Idea: a quarterly hackathon in the lighthouse.",
    );
    assert_eq!((same.status, same.json()["status"].as_str()), (200, Some("unchanged")));
    let theirs = api.raw(
        "POST",
        "/api/collections/HR%20policies/documents?source=x.txt",
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        "sneaky",
    );
    assert_eq!(theirs.status, 403, "only admins change a shared collection");
    assert_eq!(hit_sources(&search(&mut bob, "q=hackathon")), ["ideas.txt"]);
    assert!(hit_sources(&search(&mut eve, "q=hackathon")).is_empty());
    assert!(hit_sources(&search(&mut ada, "q=hackathon")).is_empty(), "not even an admin reads it");

    // Losing the group ends access at once.
    let revoked = server.ctl_remote(&token, &["collections", "revoke", "HR policies", "hr"], None);
    assert!(revoked.ok, "{}", revoked.stderr);
    assert!(hit_sources(&search(&mut bob, "q=parental+leave")).is_empty());
    assert!(server.ctl_remote(&token, &["collections", "grant", "HR policies", "hr"], None).ok);
    assert_eq!(hit_sources(&search(&mut bob, "q=parental")).len(), 1);

    // The admin's view, a rebuild, and the audit trail.
    let table = server.ctl_remote(&token, &["collections", "list"], None);
    assert!(
        table.ok && table.stdout.contains("HR policies") && table.stdout.contains("bob notes"),
        "{}",
        table.stdout
    );
    let rebuilt = ctl_ok(&server, &token, &["index", "rebuild"]);
    let passages = rebuilt["passages"].as_u64().unwrap();
    assert!(passages >= 6, "{rebuilt}");
    // The data directory read beside the running server says what the server says, in the
    // same shape, but for what only the server's process knows.
    let remote = ctl_ok(&server, &token, &["index", "status"]);
    let local = server.ctl_local(&["-o", "json", "index", "status"], None);
    assert!(local.ok, "{}", local.stderr);
    let local = local.json();
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&local), keys(&remote), "{local} / {remote}");
    assert_eq!(keys(&local["embedding"]), keys(&remote["embedding"]));
    for field in ["applied_seq", "passages", "feed_seq"] {
        assert_eq!(local[field], remote[field], "{field}: {local} / {remote}");
    }
    assert_eq!(remote["passages"].as_u64(), Some(passages));
    assert_eq!(hit_sources(&search(&mut bob, "q=parental")).len(), 1);
    assert_eq!(server.audit_events("document.add", Some("success")).len(), 5);
    assert_eq!(server.audit_events("document.replace", Some("success")).len(), 1);
    assert_eq!(server.audit_events("collection.create", Some("success")).len(), 2);
    assert_eq!(server.audit_events("collection.revoke_read", Some("success")).len(), 1);
    assert_eq!(server.audit_events("index.rebuild", Some("success")).len(), 1);
    let removed = server.ctl_remote(&token, &["collections", "remove", "HR policies"], None);
    assert!(removed.ok, "{}", removed.stderr);
    assert!(hit_sources(&search(&mut bob, "q=parental+leave")).is_empty());
}

/// `ayushctl collections ingest` of many files, the server killed with SIGKILL halfway: every
/// file the run reported as added is there and searchable after a restart (the index catches
/// up from the database by itself), and running the ingest again finishes the job without a
/// duplicate.
#[test]
fn a_killed_server_loses_no_acknowledged_document_and_the_ingest_resumes() {
    let mut server = Server::start();
    server.create_user("ada", "admin", PW);
    assert!(server.ctl_local(&["group", "create", "all"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "all", "ada"], None).ok);
    let token = server.token_for("ada");
    ctl_ok(&server, &token, &["collections", "create", "Wiki", "--group", "all"]);
    let docs = tempfile::tempdir().unwrap();
    let files = 300;
    for i in 0..files {
        let filler: String =
            (0..40).map(|j| format!("Line {j} of page {i} talks about nothing much. ")).collect();
        write(
            docs.path(),
            &format!("wiki/page{i:03}.md"),
            &format!("# Page {i}\n\nMarker token mk{i}z.\n\n{filler}\n"),
        );
    }
    let folder = docs.path().join("wiki");
    let mut ingest = Command::new(bin_path("ayushctl"))
        .args(["collections", "ingest", "Wiki", folder.to_str().unwrap()])
        .env("AYUSH_URL", &server.url)
        .env("AYUSH_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(ingest.stderr.take().unwrap()).lines().map_while(Result::ok) {
        if let Some(rest) = line.split("] ").nth(1)
            && let Some((source, status)) = rest.split_once(": ")
            && status.starts_with("added")
        {
            acknowledged.push(source.to_string());
        }
        if acknowledged.len() == 40 {
            server.kill();
            break;
        }
    }
    let _ = ingest.wait();
    assert_eq!(acknowledged.len(), 40, "the ingest reported 40 files added before the kill");

    // With the server down, the data directory's index can be rebuilt locally.
    let local = server.ctl_local(&["-o", "json", "index", "rebuild"], None);
    assert!(local.ok, "{}", local.stderr);
    assert!(local.json()["passages"].as_u64().unwrap() >= 40);
    let server = server.restart();
    let busy = server.ctl_local(&["index", "rebuild"], None);
    assert!(!busy.ok && busy.stderr.contains("in use"), "{}", busy.stderr);

    let mut ada = signed_in(&server, "ada");
    for source in &acknowledged {
        let i: usize = source.trim_start_matches("wiki/page").trim_end_matches(".md").parse().unwrap();
        assert_eq!(
            hit_sources(&search(&mut ada, &format!("q=mk{i}z"))),
            std::slice::from_ref(source),
            "{source} after the kill"
        );
    }
    let resumed = ctl_ok(&server, &token, &["collections", "ingest", "Wiki", folder.to_str().unwrap()]);
    assert_eq!(resumed["failed"].as_u64(), Some(0), "{resumed}");
    assert!(resumed["unchanged"].as_u64().unwrap() >= 40, "{resumed}");
    assert_eq!(resumed["added"].as_u64().unwrap() + resumed["unchanged"].as_u64().unwrap(), files as u64);
    let listed = ctl_ok(&server, &token, &["collections", "documents", "Wiki"]);
    assert_eq!(listed.as_array().unwrap().len(), files, "one document per file, no duplicates");
    for i in [0, 150, files - 1] {
        assert_eq!(hit_sources(&search(&mut ada, &format!("q=mk{i}z"))).len(), 1);
    }
}

/// Word, PowerPoint, Excel and PDF files written by the libraries people's tools use
/// (`tests/documents/make_documents.py`) are read with their structure: headings, slides and
/// pages for citations, sheets and tables as rows. Hostile files (a ZIP bomb, XML nested
/// 100,000 deep, a password-protected PDF, one claiming 5,001 pages, one without a text layer)
/// each fail alone with a reason, and the server goes on serving.
#[test]
#[cfg_attr(not(peer_python), ignore = "needs the test venv: run .ci/peers")]
fn office_and_pdf_files_are_read_and_hostile_ones_fail_alone() {
    let python = ayush_tests::venv_python("docx", "tests/documents/requirements.txt");
    let docs = tempfile::tempdir().unwrap();
    let made = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/documents/make_documents.py"))
        .arg(docs.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server = Server::start();
    server.create_user("ada", "admin", PW);
    assert!(server.ctl_local(&["group", "create", "staff"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "staff", "ada"], None).ok);
    let token = server.token_for("ada");
    ctl_ok(&server, &token, &["collections", "create", "Docs", "--group", "staff"]);

    let good = docs.path().join("good");
    let run = ctl_ok(&server, &token, &["collections", "ingest", "Docs", good.to_str().unwrap()]);
    assert_eq!((run["added"].as_u64(), run["failed"].as_u64()), (Some(4), Some(0)), "{run}");
    let listed = ctl_ok(&server, &token, &["collections", "documents", "Docs"]);
    let by_source = |s: &str| listed.as_array().unwrap().iter().find(|d| d["source"] == s).unwrap().clone();
    assert_eq!(by_source("good/handbook.docx")["title"], "Employee handbook");
    assert_eq!(by_source("good/board.pptx")["title"], "Board deck");
    assert_eq!(by_source("good/budget.xlsx")["title"], "Budget 2027");
    assert_eq!(by_source("good/safety.pdf")["title"], "Safety manual");
    assert_eq!(by_source("good/safety.pdf")["pages"], 3);
    assert_eq!(by_source("good/board.pptx")["pages"], 4);

    let mut ada = signed_in(&server, "ada");
    let first = |c: &mut Client, q: &str| -> Value {
        let reply = search(c, q);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["hits"][0].clone()
    };
    // Word: headings, a table as rows, the page after a page break.
    let leave = first(&mut ada, "q=annual+leave");
    assert_eq!(
        (leave["source"].as_str(), leave["heading"].as_str()),
        (Some("good/handbook.docx"), Some("Employee handbook › Leave"))
    );
    let taxi = first(&mut ada, "q=taxi");
    assert!(taxi["text"].as_str().unwrap().contains("Taxi | 60 euros"), "{taxi}");
    assert_eq!(
        (taxi["heading"].as_str(), taxi["page"].as_u64()),
        (Some("Employee handbook › Expenses"), Some(2))
    );
    // PowerPoint: the slide's title is the heading, the slide number the page.
    let hiring = first(&mut ada, "q=engineering+roles");
    assert_eq!((hiring["heading"].as_str(), hiring["page"].as_u64()), (Some("Hiring plan"), Some(2)));
    assert_eq!(first(&mut ada, "q=strategy+office")["page"], 4);
    // Excel: each row says what its numbers are, under its sheet.
    let research = first(&mut ada, "q=research+budget");
    assert_eq!(research["heading"], "Budget");
    assert!(
        research["text"].as_str().unwrap().contains("Department: Research; Budget: 450000; Owner: Tomas"),
        "{research}"
    );
    let osaka = first(&mut ada, "q=osaka");
    assert!(osaka["text"].as_str().unwrap().contains("City: Osaka; Desks: 35"), "{osaka}");
    // PDF: the page each passage is on.
    let exits = first(&mut ada, "q=assembly+point");
    assert_eq!((exits["source"].as_str(), exits["page"].as_u64()), (Some("good/safety.pdf"), Some(2)));
    assert_eq!(first(&mut ada, "q=canteen")["page"], 3);

    // Hostile files: each fails alone, with its reason.
    let bad = docs.path().join("bad");
    let out = server.ctl_remote(
        &token,
        &["-o", "json", "collections", "ingest", "Docs", bad.to_str().unwrap()],
        None,
    );
    assert!(!out.ok);
    let run = out.json();
    assert_eq!((run["added"].as_u64(), run["failed"].as_u64()), (Some(0), Some(5)), "{run}");
    let reason = |name: &str| -> String {
        run["failures"].as_array().unwrap().iter().find(|f| f["source"] == name).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(reason("bad/bomb.docx").contains("ZIP bomb"), "{}", reason("bad/bomb.docx"));
    assert!(reason("bad/deep.docx").contains("deeper than"), "{}", reason("bad/deep.docx"));
    assert!(reason("bad/locked.pdf").contains("password"), "{}", reason("bad/locked.pdf"));
    assert!(reason("bad/huge.pdf").contains("5001 pages"), "{}", reason("bad/huge.pdf"));
    assert!(reason("bad/scan.pdf").contains("no text layer"), "{}", reason("bad/scan.pdf"));
    assert_eq!(ctl_ok(&server, &token, &["collections", "documents", "Docs"]).as_array().unwrap().len(), 4);
    assert_eq!(server.client().get("/readyz").status, 200, "the server is unharmed");
}

/// A chat that answers from collections: the passages the user may read go into the prompt
/// numbered (seen here at a fake upstream model), the reply keeps them as citations, and losing
/// access removes them from the next prompt and hides the old citations.
#[test]
fn chat_answers_cite_only_passages_the_user_may_read() {
    use ayush_tests::sse_events;
    let (upstream, server, token) = hr_policies_and_an_echo_model();

    let mut bob = signed_in(&server, "bob");
    let made = bob.send_json(
        "POST",
        "/api/conversations",
        &json!({"model": "lab/echo", "collections": ["HR policies"]}),
    );
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(made.json()["collections"], json!(["HR policies"]));
    let id = made.json()["id"].as_i64().unwrap();
    let reply = bob.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "How long is parental leave?"}),
    );
    let events = sse_events(&reply.body);
    let (_, done) =
        events.iter().find(|(kind, _)| kind == "done").unwrap_or_else(|| panic!("{}", reply.body));
    let cited = done["citations"].as_array().unwrap();
    assert_eq!(cited.len(), 1, "{done}");
    assert_eq!((cited[0]["number"].as_i64(), cited[0]["source"].as_str()), (Some(1), Some("leave.md")));
    assert_eq!(cited[0]["heading"], "Leave › Parental leave");
    // What the model was given: the instructions and the numbered passage, after the question.
    let sent = upstream.chats().last().unwrap().body.clone();
    let system = sent["messages"][0]["content"].as_str().unwrap().to_string();
    assert_eq!(sent["messages"][0]["role"], "system");
    assert!(
        system.contains("[1] Leave › Parental leave (leave.md)\nParents take twenty-six weeks"),
        "{system}"
    );
    let stored = bob.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(stored["messages"][1]["citations"][0]["text"], cited[0]["text"]);
    let audit = server.audit_events("chat.message", Some("success"));
    let details: Value = serde_json::from_str(&audit[0].details).unwrap();
    assert_eq!(details["sources"][0]["collection"], "HR policies");
    assert!(details["sources"][0].get("text").is_none(), "the audit log names sources, not their text");

    // The chat page shows the source under the reply, with a link to the file.
    let page = bob.get(&format!("/chat?c={id}"));
    assert!(
        page.body.contains("class=\"citations\"") && page.body.contains("Open the file"),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"HR policies\" checked"));
    // A streamed reply is put in place already rendered, by the partial the page renders with.
    let item = done["item"].as_str().unwrap();
    assert!(item.contains(&format!("data-id=\"{}\"", done["message_id"])), "{item}");
    assert!(page.body.contains(item), "the streamed reply and the page's differ:\n{item}");

    // Eve may not attach what she may not read.
    let mut eve = signed_in(&server, "eve");
    let refused = eve.send_json(
        "POST",
        "/api/conversations",
        &json!({"model": "lab/echo", "collections": ["HR policies"]}),
    );
    assert_eq!(refused.status, 404, "{}", refused.body);

    // Bob loses the group: the next prompt has no passages, the old citation is withheld.
    assert!(server.ctl_remote(&token, &["collections", "revoke", "HR policies", "hr"], None).ok);
    let reply = bob.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "And parental leave for adoption?"}),
    );
    let (_, done) = sse_events(&reply.body).into_iter().find(|(kind, _)| kind == "done").unwrap();
    assert_eq!(done["citations"], json!([]), "{done}");
    let sent = upstream.chats().last().unwrap().body.clone();
    assert!(!sent.to_string().contains("twenty-six weeks"), "{sent}");
    let stored = bob.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(stored["messages"][1]["citations"], json!([]), "no longer readable, no longer shown");
}

/// With the real all-MiniLM-L6-v2 installed, passages are embedded behind ingestion and join
/// the ranking: a question that shares no word with a passage still finds it by meaning, and
/// the meaning-based scan keeps to the collections the user may read, as the word index does.
#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn passages_are_found_by_meaning_once_embedded_and_only_where_readable() {
    let minilm = ayush_tests::test_model("all-MiniLM-L6-v2/model.safetensors");
    let server = Server::start();
    for (user, role) in [("ada", "admin"), ("bob", "user")] {
        server.create_user(user, role, PW);
    }
    for args in [&["group", "create", "staff"][..], &["group", "add-member", "staff", "bob"]] {
        assert!(server.ctl_local(args, None).ok);
    }
    let token = server.token_for("ada");
    let mut bob = signed_in(&server, "bob");
    // Before any embedding model: words alone, and this question has none in common.
    ctl_ok(&server, &token, &["collections", "create", "Policies", "--group", "staff"]);
    assert!(server.ctl_local(&["group", "create", "board"], None).ok);
    ctl_ok(&server, &token, &["collections", "create", "Board", "--group", "board"]);
    let docs = tempfile::tempdir().unwrap();
    write(docs.path(), "home.md", "# Home office\n\nEmployees may work from home two days a week.\n");
    write(docs.path(), "food.md", "# Canteen\n\nThe cafeteria serves lunch at noon.\n");
    write(docs.path(), "board.md", "# Minutes\n\nThe board agreed that staff may telecommute on Fridays.\n");
    for f in ["home.md", "food.md"] {
        ctl_ok(
            &server,
            &token,
            &["collections", "ingest", "Policies", docs.path().join(f).to_str().unwrap()],
        );
    }
    ctl_ok(
        &server,
        &token,
        &["collections", "ingest", "Board", docs.path().join("board.md").to_str().unwrap()],
    );
    assert!(hit_sources(&search(&mut bob, "q=telecommuting+rules")).is_empty());

    let minilm = minilm.parent().unwrap().to_str().unwrap().to_string();
    let out = server.ctl_local(&["models", "import", &minilm, "--name", "minilm"], None);
    assert!(out.ok, "{}", out.stderr);
    let mut ada = signed_in(&server, "ada");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let status = ada.get("/api/admin/index").json();
        let e = &status["embedding"];
        if e["model"] == "minilm" && e["embedded"] == e["passages"] && e["in_memory"] == e["passages"] {
            assert_eq!(e["passages"], 3, "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the passages were never embedded: {status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = ctl_ok(&server, &token, &["index", "status"]);
    assert_eq!(
        (status["embedding"]["embedded"].as_i64(), status["passages"].as_u64()),
        (Some(3), Some(3)),
        "{status}"
    );
    let reply = search(&mut bob, "q=telecommuting+rules");
    assert_eq!(hit_sources(&reply)[0], "home.md", "{}", reply.body);
    assert_eq!(reply.json()["hits"][0]["highlights"], json!([]), "found by meaning: no words to mark");
    assert!(!hit_sources(&reply).contains(&"board.md".to_string()), "Board is not Bob's to read");
    // Words still count: an exact word match ranks first.
    assert_eq!(hit_sources(&search(&mut bob, "q=cafeteria"))[0], "food.md");
}

/// An install that ships an embedding model (`knowledge.bundled_embedding_model`, as the Debian
/// package, the bundle and the image do) has it in the catalog after its first start, with an
/// audit event; once the admin removes it, a restart does not bring it back.
#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
fn the_bundled_embedding_model_is_taken_in_once_and_stays_removed_when_removed() {
    let minilm = ayush_tests::test_model("all-MiniLM-L6-v2/model.safetensors");
    let folder = minilm.parent().unwrap().to_str().unwrap().to_string();
    let server = Server::start_with(&[("AYUSH_KNOWLEDGE__BUNDLED_EMBEDDING_MODEL", &folder)]);
    let listed = |server: &Server| {
        let out = server.ctl_local(&["-o", "json", "models", "list"], None);
        assert!(out.ok, "{}", out.stderr);
        out.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].clone(), m["purpose"].clone()))
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while listed(&server).is_empty() {
        assert!(std::time::Instant::now() < deadline, "never imported: {:?}", server.log_lines());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(listed(&server), vec![(json!("all-MiniLM-L6-v2"), json!("embedding"))]);
    let events = server.audit_events("model.import", Some("success"));
    assert_eq!(events.len(), 1, "{events:?}");
    let details: serde_json::Value = serde_json::from_str(&events[0].details).unwrap();
    assert_eq!((events[0].actor_name.as_str(), &details["bundled"]), ("system:bundled-model", &json!(true)));

    assert!(server.ctl_local(&["models", "remove", "all-MiniLM-L6-v2"], None).ok);
    let server = server.restart();
    // The server is ready before the background task decides; give it the time an import takes.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(listed(&server).is_empty(), "the removed model came back");
    assert_eq!(server.audit_events("model.import", Some("success")).len(), 1);

    // A relative path is a configuration error, named.
    let out = ayush_tests::run_ctl(
        &["--local", "--config", ayush_tests::NO_CONFIG_FILE, "--data-dir", "/nonexistent", "models", "list"],
        None,
        &[("AYUSH_KNOWLEDGE__BUNDLED_EMBEDDING_MODEL".into(), "models/minilm".into())],
    );
    assert!(!out.ok && out.stderr.contains("bundled_embedding_model"), "{}", out.stderr);
}

/// An admin's assistant ("HR assistant"): a model, standing instructions and a collection.
/// Whoever chats with it gets its instructions, and its collection's passages only if they may
/// read that collection themselves.
#[test]
fn an_assistant_brings_its_instructions_and_collections_read_with_the_users_rights() {
    use ayush_tests::sse_events;
    let (upstream, server, token) = hr_policies_and_an_echo_model();
    let made = ctl_ok(
        &server,
        &token,
        &[
            "assistants",
            "create",
            "hr-assistant",
            "--model",
            "lab/echo",
            "--collection",
            "HR policies",
            "--system-prompt",
            "You are the HR assistant of Example Corp.",
            "--description",
            "Answers from HR policies",
        ],
    );
    assert_eq!(made["collections"], json!(["HR policies"]));
    let bad = server.ctl_remote(&token, &["assistants", "create", "x", "--model", "no-such-model"], None);
    assert!(!bad.ok && bad.stderr.contains("no model named"), "{}", bad.stderr);
    assert!(server.ctl_remote(&token, &["assistants", "list"], None).stdout.contains("hr-assistant"));

    // Bob reads HR policies: the assistant's instructions and its passage.
    let mut bob = signed_in(&server, "bob");
    let offered = bob.get("/api/presets").json();
    assert_eq!(offered[0]["name"], "hr-assistant");
    let conv = bob.send_json("POST", "/api/conversations", &json!({"preset": "hr-assistant"}));
    assert_eq!(conv.status, 201, "{}", conv.body);
    assert_eq!(
        (conv.json()["model"].as_str(), conv.json()["preset"].as_str()),
        (Some("lab/echo"), Some("hr-assistant"))
    );
    let id = conv.json()["id"].as_i64().unwrap();
    let reply = bob.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "parental leave?"}),
    );
    let (_, done) = sse_events(&reply.body).into_iter().find(|(kind, _)| kind == "done").unwrap();
    assert_eq!(done["citations"][0]["source"], "leave.md", "{done}");
    let system = upstream.chats().last().unwrap().body["messages"][0]["content"].clone();
    let system = system.as_str().unwrap();
    assert!(
        system.starts_with("You are the HR assistant of Example Corp.")
            && system.contains("twenty-six weeks"),
        "{system}"
    );
    let page = bob.get(&format!("/chat?c={id}")).body;
    assert!(
        page.contains("value=\"preset:hr-assistant\" title=\"Answers from HR policies\" selected"),
        "{page}"
    );

    // Eve is not in hr: the same assistant, its instructions, none of its collection.
    let mut eve = signed_in(&server, "eve");
    let conv = eve.send_json("POST", "/api/conversations", &json!({"preset": "hr-assistant"}));
    let id = conv.json()["id"].as_i64().unwrap();
    let reply = eve.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "parental leave?"}),
    );
    let (_, done) = sse_events(&reply.body).into_iter().find(|(kind, _)| kind == "done").unwrap();
    assert_eq!(done["citations"], json!([]), "{done}");
    let sent = upstream.chats().last().unwrap().body.to_string();
    assert!(sent.contains("You are the HR assistant") && !sent.contains("twenty-six weeks"), "{sent}");

    // Choosing a plain model leaves the assistant; removing an assistant leaves chats working.
    let left = eve.send_json("PATCH", &format!("/api/conversations/{id}"), &json!({"model": "lab/echo"}));
    assert_eq!(left.json()["preset"], Value::Null);
    assert!(server.ctl_remote(&token, &["assistants", "remove", "hr-assistant"], None).ok);
    assert_eq!(server.audit_events("preset.create", Some("success")).len(), 1);
    assert_eq!(server.audit_events("preset.remove", Some("success")).len(), 1);
    let mut bob = signed_in(&server, "bob");
    let convs = bob.get("/api/conversations").json();
    let first = convs[0]["id"].as_i64().unwrap();
    let reply = bob.send_json(
        "POST",
        &format!("/api/conversations/{first}/messages"),
        &json!({"content": "still there?"}),
    );
    assert!(sse_events(&reply.body).iter().any(|(kind, _)| kind == "done"), "{}", reply.body);
}

/// A file attached to one chat: kept in the chat owner's "Chat N files" collection, which the
/// chat answers from; nobody else can attach to the chat or read the file.
#[test]
fn a_file_attached_to_a_chat_is_cited_there_and_read_by_its_owner_alone() {
    use ayush_tests::sse_events;
    let (upstream, server, _token) = hr_policies_and_an_echo_model();
    let mut eve = signed_in(&server, "eve");
    let conv = eve.send_json("POST", "/api/conversations", &json!({"model": "lab/echo"}));
    let id = conv.json()["id"].as_i64().unwrap();
    let key = format!("Bearer {}", server.key_signed_in("eve", PW));
    let mut api = server.client();
    let path = format!("/api/conversations/{id}/files?source=offer.txt");
    let headers = [("Authorization", key.as_str()), ("Content-Type", "text/plain")];
    let up =
        api.raw("POST", &path, &headers, "Offer letter\n\nYour starting salary is ninety thousand crowns.");
    assert_eq!(up.status, 201, "{}", up.body);
    let files = format!("Chat {id} files");
    assert_eq!(up.json()["document"]["collection"], files.as_str());
    let stored = eve.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(stored["conversation"]["collections"], json!([files]));

    let reply = eve.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "What is my starting salary?"}),
    );
    let (_, done) = sse_events(&reply.body).into_iter().find(|(kind, _)| kind == "done").unwrap();
    assert_eq!(done["citations"][0]["source"], "offer.txt", "{done}");
    let sent = upstream.chats().last().unwrap().body.to_string();
    assert!(sent.contains("ninety thousand crowns"), "{sent}");

    // Bob cannot attach to Eve's chat, nor find her file.
    let bob_key = format!("Bearer {}", server.key_signed_in("bob", PW));
    let theirs =
        api.raw("POST", &path, &[("Authorization", bob_key.as_str()), ("Content-Type", "text/plain")], "x");
    assert_eq!(theirs.status, 404, "{}", theirs.body);
    let mut bob = signed_in(&server, "bob");
    assert!(hit_sources(&search(&mut bob, "q=salary")).is_empty());
    assert_eq!(hit_sources(&search(&mut eve, "q=salary")), ["offer.txt"]);
}

/// ada (admin), bob (in hr) and eve; "HR policies" read by hr, holding leave.md; and the
/// provider "lab" whose model `lab/echo` is a fake upstream that records what it is sent.
fn hr_policies_and_an_echo_model() -> (ayush_tests::upstream::Upstream, Server, String) {
    use ayush_tests::upstream::{KEY, Upstream};
    let upstream = Upstream::start(1);
    let server = Server::start();
    for (user, role) in [("ada", "admin"), ("bob", "user"), ("eve", "user")] {
        server.create_user(user, role, PW);
    }
    for args in [&["group", "create", "hr"][..], &["group", "add-member", "hr", "bob"]] {
        assert!(server.ctl_local(args, None).ok);
    }
    let token = server.token_for("ada");
    let url = format!("{}/v1", upstream.url());
    let args = [
        "providers",
        "add",
        "lab",
        "--kind",
        "openai",
        "--base-url",
        &url,
        "--model",
        "echo",
        "--api-key-stdin",
    ];
    let added = server.ctl_remote(&token, &args, Some(KEY));
    assert!(added.ok, "{}", added.stderr);
    ctl_ok(&server, &token, &["collections", "create", "HR policies", "--group", "hr"]);
    let docs = tempfile::tempdir().unwrap();
    write(
        docs.path(),
        "leave.md",
        "# Leave\n\n## Parental leave\n\nParents take twenty-six weeks of parental leave.\n",
    );
    let leave = docs.path().join("leave.md");
    ctl_ok(&server, &token, &["collections", "ingest", "HR policies", leave.to_str().unwrap()]);
    (upstream, server, token)
}
