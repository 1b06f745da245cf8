//! Speech to text with the local Whisper base model: imported with `ayushctl --local models
//! import` from its CTranslate2 folder, then called by the official `openai` SDK on
//! `/v1/audio/transcriptions` with speech espeak-ng synthesised from known sentences, in every
//! response format; bad files, wrong models and languages, oversize bodies and model access are
//! refused as OpenAI refuses them; each call leaves a usage record and an audit event.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::{GEMMA_FILE, Server, test_model, venv_python};
use serde_json::Value;

const SAID: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
                    It is easy to tell the depth of a well.";

fn speak(text: &str, wav: &std::path::Path) {
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(wav)
        .arg(text)
        .status()
        .expect("espeak-ng (.ci/peers installs it)");
    assert!(status.success());
}

#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
#[cfg_attr(not(peer_python), ignore = "needs the test venv: run .ci/peers")]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng: run .ci/peers")]
fn the_openai_sdk_transcribes_speech_with_the_local_whisper() {
    let whisper = test_model("whisper-base/model.bin");
    let whisper = whisper.parent().unwrap().to_str().unwrap().to_string();
    let python = venv_python("openai", "tests/openai/requirements.txt");
    let server = Server::start_with_config("[transcription]\nmax_file_mib = 1\n");
    let imported = server.ctl_local(&["-o", "json", "models", "import", &whisper, "--name", "whisper"], None);
    assert!(imported.ok, "{}", imported.stderr);
    let m = imported.json();
    assert_eq!((m["purpose"].as_str(), m["arch"].as_str()), (Some("transcription"), Some("whisper")));
    let gemma = test_model(GEMMA_FILE);
    assert!(server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None).ok);
    // It hears; it does not chat.
    let default = server.ctl_local(&["models", "set-default", "whisper"], None);
    assert!(!default.ok && default.stderr.contains("is a transcription model"), "{}", default.stderr);
    assert!(server.ctl_local(&["models", "verify", "whisper"], None).stdout.contains("matches its manifest"));

    server.create_user("tomas", "user", "tomas password 1");
    let key = server.key_signed_in("tomas", "tomas password 1");
    let dir = tempfile::tempdir().unwrap();
    let (wav, junk) = (dir.path().join("said.wav"), dir.path().join("minutes.mp3"));
    speak(SAID, &wav);
    std::fs::write(&junk, "these are the meeting minutes, typed, not recorded").unwrap();

    let out = std::process::Command::new(python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openai/transcribe.py"))
        .env("AYUSH_BASE_URL", format!("{}/v1", server.url))
        .env("AYUSH_KEY", &key)
        .env("AYUSH_MODEL", "whisper")
        .env("AYUSH_CHAT_MODEL", "gemma")
        .env("AYUSH_AUDIO", &wav)
        .env("AYUSH_NOT_AUDIO", &junk)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    eprintln!("{seen:#}");

    let text = seen["json"]["text"].as_str().unwrap().to_lowercase();
    // espeak-ng's voice is not a person's; these words Whisper base hears whatever the window.
    for words in ["smooth planks", "the sheet", "tell the depth"] {
        assert!(text.contains(words), "{words:?} not heard in {text:?}");
    }
    assert_eq!(seen["text"].as_str().unwrap().trim().to_lowercase(), text);
    let srt = seen["srt"].as_str().unwrap();
    assert!(
        srt.starts_with("1\n00:00:0") && srt.contains(" --> 00:00:0") && srt.contains("\n\n2\n"),
        "{srt}"
    );
    let vtt = seen["vtt"].as_str().unwrap();
    assert!(vtt.starts_with("WEBVTT\n\n00:00:0") && vtt.contains("planks"), "{vtt}");
    let v = &seen["verbose"];
    assert_eq!(v["language"], "english");
    let duration = v["duration"].as_f64().unwrap();
    assert!((6.0..15.0).contains(&duration), "{v}");
    let segments = v["segments"].as_array().unwrap();
    assert!(!segments.is_empty() && segments[0]["start"].as_f64() < Some(1.0), "{v}");
    assert!(segments.iter().all(|s| s["end"].as_f64() <= Some(duration + 0.5)), "{v}");

    let e = &seen["not_audio"];
    assert_eq!(e["status"], 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("not an audio file"), "{e}");
    let e = &seen["chat_model"];
    assert!(e["message"].as_str().unwrap().contains("gemma is not a transcription model"), "{e}");
    let e = &seen["no_model"];
    assert_eq!((e["status"].as_i64(), e["code"].as_str()), (Some(404), Some("model_not_found")), "{e}");
    let e = &seen["bad_language"];
    assert!(e["message"].as_str().unwrap().contains("\"xx\""), "{e}");

    // Larger than transcription.max_file_mib: refused before it is parsed.
    let big = format!(
        "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"long.wav\"\r\n\r\n{}\r\n--b--\r\n",
        "x".repeat(1_200_000)
    );
    let bearer = format!("Bearer {key}");
    let headers = [("authorization", bearer.as_str()), ("content-type", "multipart/form-data; boundary=b")];
    let r = server.client().raw("POST", "/v1/audio/transcriptions", &headers, &big);
    assert_eq!(r.status, 413, "{}", r.body);
    assert!(r.body.contains("larger than 1 MiB"), "{}", r.body);
    let not_a_form = [("authorization", bearer.as_str()), ("content-type", "application/json")];
    let r = server.client().raw("POST", "/v1/audio/transcriptions", &not_a_form, "{}");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("multipart/form-data"), "{}", r.body);

    // Each call is audited under the key's owner, without what was said.
    let heard = server.audit_events("audio.transcription", Some("success"));
    assert_eq!(heard.len(), 5, "{heard:?}");
    let details: Value = serde_json::from_str(&heard[0].details).unwrap();
    assert_eq!(
        (details["model"].as_str(), details["source"].as_str()),
        (Some("whisper"), Some("v1.transcriptions"))
    );
    assert!(details["seconds"].as_f64().unwrap() > 5.0, "{details}");
    assert!(!details.to_string().contains("planks"), "the audit log does not keep the words: {details}");
    assert!(heard[0].actor_name == "tomas" && heard[0].api_key_id.is_some(), "{:?}", heard[0]);
    let failed = server.audit_events("audio.transcription", Some("failure"));
    assert!(failed.iter().any(|e| e.details.contains("not an audio file")), "{failed:?}");

    // A model restricted to a group is not there for others.
    assert!(server.ctl_local(&["group", "create", "legal"], None).ok);
    assert!(server.ctl_local(&["models", "allow", "whisper", "--group", "legal"], None).ok);
    let form = format!(
        "--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"said.wav\"\r\n\r\n{}\r\n--b--\r\n",
        "RIFF"
    );
    let r = server.client().raw("POST", "/v1/audio/transcriptions", &headers, &form);
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("model_not_found"), "{}", r.body);
}

/// The chat's microphone, with Chromium's fake capture device playing the spoken sentences:
/// Dictate, Stop dictation, and the words land in the message box after what was typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng: run .ci/peers")]
async fn dictation_puts_what_was_said_in_the_message_box() {
    use ayush_tests::browser::{Browser, console_errors, sign_in, snap};
    use fantoccini::Locator;
    let whisper = test_model("whisper-base/model.bin");
    let whisper = whisper.parent().unwrap().to_str().unwrap().to_string();
    let server = Server::start();
    assert!(server.ctl_local(&["models", "import", &whisper, "--name", "whisper"], None).ok);
    let gemma = test_model(GEMMA_FILE);
    assert!(server.ctl_local(&["models", "import", gemma.to_str().unwrap(), "--name", "gemma"], None).ok);
    server.create_user("ines", "user", "ines password 12");
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("said.wav");
    speak(SAID, &wav);
    let microphone = [
        "--use-fake-ui-for-media-stream".to_string(),
        "--use-fake-device-for-media-stream".to_string(),
        format!("--use-file-for-fake-audio-capture={}%noloop", wav.display()),
    ];
    let browser = Browser::launch_with(&microphone).await;
    let c = &browser.client;
    sign_in(c, &server.url, "ines", "ines password 12").await;
    c.goto(&format!("{}/chat", server.url)).await.unwrap();
    let dictate = c.find(Locator::Css("#dictate")).await.unwrap();
    assert_eq!(dictate.text().await.unwrap(), "Dictate");
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("Minutes:").await.unwrap();
    dictate.click().await.unwrap();
    let pressed = async || dictate.attr("aria-pressed").await.unwrap().unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pressed().await != "true" {
        assert!(std::time::Instant::now() < deadline, "recording did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    snap(c, "dictation-listening").await;
    // The recording is about nine seconds long.
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    dictate.click().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let text = loop {
        let value =
            c.find(Locator::Css("#prompt")).await.unwrap().prop("value").await.unwrap().unwrap_or_default();
        if value.len() > "Minutes:".len() {
            break value;
        }
        let status = c.find(Locator::Css("#dictation-status")).await.unwrap().text().await.unwrap();
        assert!(!status.contains("failed") && !status.contains("not available"), "{status}");
        assert!(std::time::Instant::now() < deadline, "no transcript came back: {status:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    snap(c, "dictation-done").await;
    assert!(text.starts_with("Minutes: "), "{text:?}");
    assert!(text.to_lowercase().contains("smooth planks"), "{text:?}");
    assert_eq!(dictate.attr("aria-pressed").await.unwrap().as_deref(), Some("false"));
    assert!(console_errors(c).await.is_empty());
    let heard = server.audit_events("audio.transcription", Some("success"));
    assert_eq!((heard.len(), heard[0].actor_name.as_str()), (1, "ines"));
    browser.close().await;
}

/// Harvard lists 1 and 2, spoken slowly: about 76 seconds, so the last sentences fall in the
/// second minute.
const MEETING: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
    It is easy to tell the depth of a well. These days a chicken leg is a rare dish. Rice is often served in \
    round bowls. The juice of lemons makes fine punch. The box was thrown beside the parked truck. The hogs \
    were fed chopped corn and garbage. Four hours of steady work faced us. A large size in stockings is hard \
    to sell. The boy was there when the sun rose. A rod is used to catch pink salmon. The source of the huge \
    river is the clear spring. Kick the ball straight and follow through. Help the woman get back to her feet. \
    A pot of tea helps to pass the evening. Smoky fires lack flame and heat. The soft cushion broke the man's \
    fall. The salt breeze came across from the sea. The girl at the booth sold fifty bonds.";

/// A recording added to a collection is transcribed and searched, each passage headed by the
/// minute it was said in; through a server's worker (uploaded by `ayushctl` with a key) and
/// through `ayushctl --local`. Without a transcription model, the reason is given.
#[test]
#[cfg_attr(not(peer_models), ignore = "needs the test models: run packaging/fetch-models all")]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng: run .ci/peers")]
fn recordings_in_a_collection_are_found_to_the_minute() {
    let server = Server::start();
    server.create_user("ada", "admin", "ada password 123");
    let token = server.token_for("ada");
    let dir = tempfile::tempdir().unwrap();
    let (meeting, standup) = (dir.path().join("board-meeting.wav"), dir.path().join("standup.wav"));
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "110", "-w"])
        .arg(&meeting)
        .arg(MEETING)
        .status()
        .unwrap();
    assert!(status.success());
    speak(SAID, &standup);
    let remote = |args: &[&str]| server.ctl_remote(&token, args, None);
    assert!(server.ctl_local(&["group", "create", "board"], None).ok);
    assert!(server.ctl_local(&["group", "add-member", "board", "ada"], None).ok);
    let made = remote(&["collections", "create", "Meetings", "--group", "board"]);
    assert!(made.ok, "{}", made.stderr);

    let refused = remote(&["collections", "ingest", "Meetings", meeting.to_str().unwrap()]);
    assert!(
        !refused.ok && refused.stderr.contains("no transcription model is installed"),
        "{}",
        refused.stderr
    );

    let whisper = test_model("whisper-base/model.bin");
    assert!(server.ctl_local(&["models", "import", whisper.parent().unwrap().to_str().unwrap()], None).ok);
    let added = remote(&["collections", "ingest", "Meetings", meeting.to_str().unwrap()]);
    assert!(added.ok, "{}", added.stderr);
    let local = server.ctl_local(&["collections", "ingest", "Meetings", standup.to_str().unwrap()], None);
    assert!(local.ok, "{}", local.stderr);

    let mut ada = server.client();
    assert_eq!(ada.login("ada", "ada password 123").status, 200);
    let mut found = |query: &str| -> Value {
        let r = ada.get(&format!("/api/search?q={}", query.replace(' ', "+")));
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["hits"].clone()
    };
    let salmon = found("catch pink salmon")[0].clone();
    assert_eq!(
        (salmon["source"].as_str(), salmon["heading"].as_str()),
        (Some("board-meeting.wav"), Some("0:00"))
    );
    let breeze = found("salt breeze from the sea")[0].clone();
    let heard = (breeze["source"].as_str(), breeze["heading"].as_str());
    assert_eq!(heard, (Some("board-meeting.wav"), Some("1:00")), "{breeze}");
    // What `ayushctl --local` added reaches the running server's index through the feed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let planks = ada.get("/api/search?q=smooth+planks").json();
        let sources: Vec<&str> =
            planks["hits"].as_array().unwrap().iter().filter_map(|h| h["source"].as_str()).collect();
        if sources.contains(&"standup.wav") && sources.contains(&"board-meeting.wav") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{sources:?}");
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let docs = ada.get("/api/collections/Meetings/documents").json();
    assert!(docs.as_array().unwrap().iter().all(|d| d["format"] == "audio"), "{docs}");
}
