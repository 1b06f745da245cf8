//! Company knowledge in the web UI as a person uses it, in headless Chromium: make a personal
//! collection, drop files on it and watch each one's progress to the end (a broken one fails
//! with its reason), find a passage on the search page with the words that matched marked, then
//! ask the real Qwen model about it in a chat that answers from the collection and see the
//! passage cited under the reply.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::browser::{Browser, fill, sign_in, snap, text_of, text_when, wait_for_url};
use ayush_tests::{QWEN_FILE, Server, test_model};
use fantoccini::Locator;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
async fn a_user_uploads_files_to_a_personal_collection_and_finds_them() {
    let server = Server::start();
    server.create_user("kim", "user", "kim password 1234");
    let files = tempfile::tempdir().unwrap();
    let leave = files.path().join("leave.md");
    std::fs::write(
        &leave,
        "# Leave\n\n## Parental leave\n\nParents take twenty-six weeks of parental leave at full pay.\n",
    )
    .unwrap();
    let broken = files.path().join("broken.pdf");
    std::fs::write(&broken, "%PDF-1.7\nnot really a PDF").unwrap();

    let browser = Browser::launch().await;
    let c = &browser.client;
    let base = server.url.clone();
    sign_in(c, &base, "kim", "kim password 1234").await;
    // Signing in submits a form: wait for the page it leads to.
    assert!(text_when(c, "h1", "Welcome, kim").await.contains("Welcome, kim"));
    c.find(Locator::LinkText("Collections")).await.unwrap().click().await.unwrap();
    assert_eq!(text_when(c, "h1", "Collections").await, "Collections");
    fill(c, "#c-name", "kim notes").await;
    c.find(Locator::Css("form[action='/collections'] button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_url(c, "/collections/kim%20notes").await;
    assert!(text_of(c, ".lead").await.contains("read by kim alone"));

    // Both files at once, as a drop or a multiple choice gives them.
    let both = format!("{}\n{}", leave.display(), broken.display());
    c.find(Locator::Css("#files")).await.unwrap().send_keys(&both).await.unwrap();
    let done = text_when(c, "li[data-file='leave.md'] .state", "done").await;
    assert_eq!(done, "done: added");
    let failed = text_when(c, "li[data-file='broken.pdf'] .state", "failed").await;
    assert!(failed.starts_with("failed: broken.pdf:") && failed.contains("PDF"), "{failed}");
    snap(c, "collection-uploads").await;

    // The page, reloaded, lists the document and the two jobs.
    c.refresh().await.unwrap();
    assert!(text_of(c, "tr[data-document='leave.md']").await.contains("Leave"));
    let jobs = text_of(c, "section[aria-labelledby=jobs-heading]").await;
    assert!(jobs.contains("done: added") && jobs.contains("failed"), "{jobs}");

    // Search: the passage, where it sits, and the matched words marked.
    c.find(Locator::LinkText("Search")).await.unwrap().click().await.unwrap();
    fill(c, "#s-q", "parental leave").await;
    c.find(Locator::Css(".search-form button[type=submit]")).await.unwrap().click().await.unwrap();
    let hit = text_when(c, ".hit", "Parental leave").await;
    assert!(hit.contains("kim notes · leave.md") && hit.contains("Leave › Parental leave"), "{hit}");
    let marked = text_of(c, ".hit .snippet mark").await;
    assert!(["Parents", "parental", "leave"].contains(&marked.as_str()), "{marked}");
    snap(c, "search").await;

    // A chat that answers from the collection: the reply comes with its source.
    let qwen = test_model(QWEN_FILE);
    let out = server.ctl_local(&["models", "import", qwen.to_str().unwrap(), "--name", "qwen"], None);
    assert!(out.ok, "{}", out.stderr);
    c.find(Locator::Css("a.new-chat")).await.unwrap().click().await.unwrap();
    text_when(c, "#sources-picker summary", "Answer from documents").await;
    c.find(Locator::Css("#sources-picker summary")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#sources-picker input[value='kim notes']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#prompt"))
        .await
        .unwrap()
        .send_keys("How many weeks of parental leave do parents get? Answer in one short sentence.")
        .await
        .unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    // The sources come with the end of the answer: give a slow CPU time to finish it.
    c.wait()
        .at_most(std::time::Duration::from_secs(180))
        .for_element(Locator::Css(".msg.assistant .citations li"))
        .await
        .expect("the answer ended with its sources");
    let source = text_of(c, ".msg.assistant .citations li").await;
    assert!(source.contains("Leave › Parental leave") && source.contains("kim notes · leave.md"), "{source}");
    let reply = text_of(c, ".msg.assistant .body").await;
    assert!(!reply.trim().is_empty());
    c.find(Locator::Css(".msg.assistant .citations summary")).await.unwrap().click().await.unwrap();
    let quoted = text_of(c, ".msg.assistant .citations blockquote").await;
    assert!(quoted.contains("twenty-six weeks"), "{quoted}");
    let link = c.find(Locator::LinkText("Open the file")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(link.starts_with("/api/collections/kim%20notes/documents/"), "{link}");
    snap(c, "chat-citation").await;

    // Reloaded, the chat still answers from the collection and shows the source.
    c.refresh().await.unwrap();
    assert!(text_of(c, ".msg.assistant .citations").await.contains("leave.md"));
    assert!(c.find(Locator::Css("#sources-picker input[value='kim notes']:checked")).await.is_ok());

    // A file attached to this chat alone: read, then kept in the chat's files collection.
    let offer = files.path().join("offer.txt");
    std::fs::write(&offer, "Offer letter\n\nYour starting salary is ninety thousand crowns.\n").unwrap();
    c.find(Locator::Css("#attach-file"))
        .await
        .unwrap()
        .send_keys(&offer.display().to_string())
        .await
        .unwrap();
    let state = text_when(c, "#attachments li[data-file='offer.txt'] .state", "ready").await;
    assert_eq!(state, "offer.txt: ready: the chat answers from it");
    c.refresh().await.unwrap();
    let picked = c.find(Locator::Css("#sources-picker input:checked[value^='Chat ']")).await.unwrap();
    assert!(picked.attr("value").await.unwrap().unwrap().ends_with(" files"));
    browser.close().await;
}
