//! Speech and images through providers, end to end: the real `ayush` binary between a client
//! and fake OpenAI, ElevenLabs, Black Forest Labs and Ideogram vendors on loopback that answer
//! with real audio (espeak-ng, lame) and real PNGs. `/v1/audio/speech` and
//! `/v1/images/generations` in the OpenAI shapes, each vendor's wire format and key, model
//! purposes kept apart, refusals in words, usage and cost per character and per image, audit
//! events; in the chat, an image model's answer stored with the conversation and only its
//! owner's, and Read aloud in the browser.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers here fail tests by panicking

use ayush_tests::upstream::{KEY, Upstream};
use ayush_tests::{Client, Server, sse_events};
use base64::Engine as _;
use serde_json::{Value, json};

/// Adds a provider through `ayushctl` as the admin, with the fake's key.
fn add_provider(server: &Server, admin: &str, args: &[&str]) -> Value {
    let mut full = vec!["-o", "json", "providers", "add"];
    full.extend_from_slice(args);
    full.push("--api-key-stdin");
    let out = server.ctl_remote(admin, &full, Some(KEY));
    assert!(out.ok, "{}", out.stderr);
    out.json()
}

/// The width and height of a PNG file.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    let reader = png::Decoder::new(std::io::Cursor::new(bytes)).read_info().expect("a PNG file");
    (reader.info().width, reader.info().height)
}

/// Seconds of audio in a file Ayush's own decoder reads.
fn seconds_of(bytes: &[u8], name: &str) -> f64 {
    let samples =
        ayush_models::audio::decode(bytes.to_vec(), Some(name), 600).expect("audio Ayush can decode");
    samples.len() as f64 / 16_000.0
}

fn post(c: &mut Client, key: &str, path: &str, body: &Value) -> ayush_tests::Reply {
    let auth = format!("Bearer {key}");
    c.raw("POST", path, &[("Authorization", &auth), ("Content-Type", "application/json")], &body.to_string())
}

/// A server with the four vendors configured, an admin token and a user's key.
fn set_up(upstream: &Upstream, config: &str) -> (Server, String, String) {
    let server = Server::start_with_config(config);
    server.create_user("root", "admin", "root password 1");
    server.create_user("amira", "user", "amira password 1");
    let admin = server.token_for("root");
    let key = server.key_signed_in("amira", "amira password 1");
    let base = upstream.url();
    let v1 = format!("{base}/v1");
    let openai = add_provider(
        &server,
        &admin,
        &[
            "up-openai",
            "--kind",
            "openai",
            "--base-url",
            &v1,
            "--model",
            "echo",
            "--speech-model",
            "tts-1",
            "--image-model",
            "gpt-image-1,sdxl",
        ],
    );
    assert_eq!(openai["speech_models"], json!(["tts-1"]));
    assert_eq!(openai["image_models"], json!(["gpt-image-1", "sdxl"]));
    add_provider(
        &server,
        &admin,
        &[
            "up-eleven",
            "--kind",
            "elevenlabs",
            "--base-url",
            &base,
            "--speech-model",
            "eleven_multilingual_v2",
        ],
    );
    add_provider(
        &server,
        &admin,
        &["up-flux", "--kind", "bfl", "--base-url", &base, "--image-model", "flux-dev"],
    );
    add_provider(
        &server,
        &admin,
        &["up-ideogram", "--kind", "ideogram", "--base-url", &base, "--image-model", "V_3,V_2"],
    );
    (server, admin, key)
}

#[test]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng and lame: run .ci/peers")]
fn speech_and_images_come_from_each_vendor_in_the_openai_shapes() {
    let upstream = Upstream::start(2);
    let (server, admin, key) = set_up(&upstream, "");
    let mut c = server.client();

    // A vendor offers only what its API does.
    let wrong = server.ctl_remote(
        &admin,
        &[
            "providers",
            "add",
            "up-bad",
            "--kind",
            "elevenlabs",
            "--base-url",
            &upstream.url(),
            "--model",
            "gpt-4o",
        ],
        None,
    );
    assert!(
        !wrong.ok && wrong.stderr.contains("has no chat models; it offers speech models"),
        "{}",
        wrong.stderr
    );
    let twice = server.ctl_remote(&admin, &["providers", "set", "up-openai", "--image-model", "tts-1"], None);
    assert!(!twice.ok && twice.stderr.contains("listed twice"), "{}", twice.stderr);

    // /v1/models lists them all; the chat's list, only what chats.
    let auth = format!("Bearer {key}");
    let models = c.raw("GET", "/v1/models", &[("Authorization", &auth)], "").json();
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for id in ["up-openai/tts-1", "up-eleven/eleven_multilingual_v2", "up-flux/flux-dev", "up-ideogram/V_3"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    // OpenAI's speech: MP3 by default, WAV and PCM when asked; each real audio of the text.
    let text = "The birch canoe slid on the smooth planks.";
    let mp3 = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/tts-1", "input": text, "voice": "alloy"}),
    );
    assert_eq!(mp3.status, 200, "{}", mp3.body);
    assert_eq!(mp3.header("content-type"), Some("audio/mpeg"));
    assert!(seconds_of(&mp3.bytes, "a.mp3") > 1.5, "the sentence spoken");
    let sent = upstream.received("/v1/audio/speech");
    assert_eq!(sent[0].header("authorization"), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!((sent[0].body["input"].as_str(), sent[0].body["model"].as_str()), (Some(text), Some("tts-1")));
    let wav = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/tts-1", "input": text, "voice": "nova", "response_format": "wav", "speed": 1.25}),
    );
    assert_eq!((wav.status, wav.header("content-type")), (200, Some("audio/wav")));
    assert!(seconds_of(&wav.bytes, "a.wav") > 1.5);
    assert_eq!(upstream.received("/v1/audio/speech")[1].body["speed"], json!(1.25));

    // ElevenLabs: its own path, header and formats; WAV made here from its PCM.
    let eleven = |c: &mut Client, voice: &str, format: &str| {
        post(
            c,
            &key,
            "/v1/audio/speech",
            &json!({"model": "up-eleven/eleven_multilingual_v2", "input": text, "voice": voice, "response_format": format}),
        )
    };
    let e_mp3 = eleven(&mut c, "21m00Tcm4TlvDq8ikWAM", "mp3");
    assert_eq!((e_mp3.status, e_mp3.header("content-type")), (200, Some("audio/mpeg")), "{}", e_mp3.body);
    assert!(seconds_of(&e_mp3.bytes, "e.mp3") > 1.5);
    let e_wav = eleven(&mut c, "21m00Tcm4TlvDq8ikWAM", "wav");
    assert_eq!(e_wav.status, 200, "{}", e_wav.body);
    assert!(seconds_of(&e_wav.bytes, "e.wav") > 1.5, "the PCM became a WAV file");
    let asked = upstream.received("/v1/text-to-speech/");
    assert_eq!(asked[0].header("xi-api-key"), Some(KEY));
    assert!(
        asked[0].path.ends_with("?output_format=mp3_44100_128") && asked[1].path.ends_with("=pcm_24000"),
        "{asked:?}"
    );
    assert_eq!(asked[0].body["model_id"], "eleven_multilingual_v2");
    let opus = eleven(&mut c, "21m00Tcm4TlvDq8ikWAM", "opus");
    assert!(opus.status == 400 && opus.body.contains("speaks mp3, wav or pcm"), "{}", opus.body);
    let missing = eleven(&mut c, "missing-voice", "mp3");
    assert!(
        missing.status == 404 && missing.body.contains("voice_id missing-voice was not found"),
        "{}",
        missing.body
    );
    let odd = eleven(&mut c, "../v1/models", "mp3");
    assert!(odd.status == 400 && odd.body.contains("not an ElevenLabs voice id"), "{}", odd.body);

    // Images: inline from OpenAI, by URL from an OpenAI-compatible server, polled from Flux,
    // by aspect ratio from Ideogram; always PNGs handed back inline.
    let draw = |c: &mut Client, model: &str, extra: Value| {
        let mut body = json!({"model": model, "prompt": "a red fox in the snow"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        post(c, &key, "/v1/images/generations", &body)
    };
    let pngs = |r: &ayush_tests::Reply| -> Vec<(u32, u32)> {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                png_size(
                    &base64::engine::general_purpose::STANDARD
                        .decode(d["b64_json"].as_str().unwrap())
                        .unwrap(),
                )
            })
            .collect()
    };
    let two = draw(&mut c, "up-openai/gpt-image-1", json!({"n": 2, "size": "256x256"}));
    assert_eq!(pngs(&two), vec![(256, 256), (256, 256)]);
    assert_eq!(two.json()["data"][0]["revised_prompt"], "a fox, drawn");
    assert_eq!(two.json()["output_format"], "png");
    let by_url = draw(&mut c, "up-openai/sdxl", json!({"size": "320x192"}));
    assert_eq!(pngs(&by_url), vec![(320, 192)]);
    assert!(!upstream.received("/files/320x192.png").is_empty(), "the image was fetched from its URL");
    assert!(
        upstream.received("/files/").iter().all(|r| r.header("authorization").is_none()),
        "no key to a file URL"
    );
    let flux = draw(&mut c, "up-flux/flux-dev", json!({"size": "512x384"}));
    assert_eq!(pngs(&flux), vec![(512, 384)]);
    let submitted = upstream.received("/v1/flux-dev");
    assert_eq!((submitted[0].header("x-key"), submitted[0].body["width"].as_u64()), (Some(KEY), Some(512)));
    assert!(upstream.received("/v1/get_result").len() >= 2, "polled until ready");
    let unfit = draw(&mut c, "up-flux/flux-dev", json!({"size": "1000x1000"}));
    assert!(unfit.status == 400 && unfit.body.contains("multiples of 32"), "{}", unfit.body);
    let moderated = draw(&mut c, "up-flux/flux-dev", json!({"prompt": "something forbidden"}));
    assert!(moderated.status == 400 && moderated.body.contains("moderation refused"), "{}", moderated.body);
    let wide = draw(&mut c, "up-ideogram/V_3", json!({"size": "1024x576"}));
    assert_eq!(pngs(&wide), vec![(1024, 576)]);
    let form = upstream.received("/v1/ideogram-v3/generate");
    assert_eq!(form[0].header("api-key"), Some(KEY));
    assert!(
        form[0].body.as_str().unwrap().contains("name=\"aspect_ratio\"\r\n\r\n16x9"),
        "{:?}",
        form[0].body
    );
    let legacy = draw(&mut c, "up-ideogram/V_2", json!({"n": 2}));
    assert_eq!(pngs(&legacy), vec![(64, 64), (64, 64)]);
    assert_eq!(
        upstream.received("/generate").iter().find(|r| r.path == "/generate").unwrap().body["image_request"]
            ["model"],
        "V_2"
    );
    let url = draw(&mut c, "up-openai/gpt-image-1", json!({"response_format": "url"}));
    assert!(url.status == 400 && url.body.contains("ask for b64_json"), "{}", url.body);

    // Each model does what it is for, and says so.
    let spoken_by_chat = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/echo", "input": "hi", "voice": "alloy"}),
    );
    assert!(
        spoken_by_chat.status == 400 && spoken_by_chat.body.contains("is not a speech model"),
        "{}",
        spoken_by_chat.body
    );
    let chat_with_image = c.v1_chat(
        &key,
        &json!({"model": "up-flux/flux-dev", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert!(
        chat_with_image.status == 400 && chat_with_image.body.contains("is an image model; it does not chat"),
        "{}",
        chat_with_image.body
    );
    let unknown =
        post(&mut c, &key, "/v1/images/generations", &json!({"model": "up-flux/nope", "prompt": "x"}));
    assert_eq!((unknown.status, unknown.error_code()), (404, "model_not_found".to_string()));
    let empty = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/tts-1", "input": "  ", "voice": "alloy"}),
    );
    assert!(empty.status == 400 && empty.body.contains("no text to speak"), "{}", empty.body);
    let long = "word ".repeat(1000);
    let too_long = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/tts-1", "input": long, "voice": "alloy"}),
    );
    assert!(too_long.status == 400 && too_long.body.contains("at most 4096"), "{}", too_long.body);
    let many = draw(&mut c, "up-openai/gpt-image-1", json!({"n": 11}));
    assert!(many.status == 400 && many.body.contains("n must be from 1 to 10"), "{}", many.body);
    let bad_format = post(
        &mut c,
        &key,
        "/v1/audio/speech",
        &json!({"model": "up-openai/tts-1", "input": "hi", "voice": "alloy", "response_format": "ogg"}),
    );
    assert!(bad_format.status == 400 && bad_format.body.contains("use mp3, opus"), "{}", bad_format.body);

    // A key the vendor refuses is the admin's to fix.
    let out =
        server.ctl_remote(&admin, &["providers", "set", "up-flux", "--api-key-stdin"], Some("wrong-key"));
    assert!(out.ok, "{}", out.stderr);
    let refused = draw(&mut c, "up-flux/flux-dev", json!({}));
    assert!(
        refused.status == 502 && refused.body.contains("an admin must update the provider's key"),
        "{}",
        refused.body
    );

    // Usage: characters spoken, images drawn at their price; the audit log names each call
    // without its words.
    let priced = server.ctl_remote(
        &admin,
        &["-o", "json", "providers", "price", "up-ideogram", "V_3", "--per-image", "0.08"],
        None,
    );
    assert!(priced.ok, "{}", priced.stderr);
    assert_eq!(priced.json()["per_image"], json!(0.08));
    let again = draw(&mut c, "up-ideogram/V_3", json!({"n": 2}));
    assert_eq!(again.status, 200);
    let report = server.ctl_remote(&admin, &["-o", "json", "usage", "report", "--by", "model"], None);
    assert!(report.ok, "{}", report.stderr);
    let lines = report.json();
    let line = |model: &str| {
        lines.as_array().unwrap().iter().find(|l| l["key"] == model).cloned().unwrap_or_default()
    };
    let tts = line("up-openai/tts-1");
    assert_eq!(tts["prompt_tokens"], json!(2 * text.len()), "characters spoken: {tts}");
    assert!((line("up-ideogram/V_3")["cost"].as_f64().unwrap() - 0.16).abs() < 1e-9, "{lines}");
    let spoken = server.audit_events("audio.speech", Some("success"));
    assert!(spoken.len() >= 4);
    let first = spoken.iter().find(|e| e.details.contains("\"alloy\"")).unwrap();
    let said: Value = serde_json::from_str(&first.details).unwrap();
    assert_eq!(
        (said["characters"].as_u64(), said["voice"].as_str()),
        (Some(text.len() as u64), Some("alloy"))
    );
    assert!(spoken.iter().all(|e| !e.details.contains("birch")), "the text is not in the audit log");
    let drawn = server.audit_events("image.generation", Some("success"));
    assert!(drawn.iter().all(|e| !e.details.contains("fox")), "nor the prompt");
    assert!(!server.audit_events("image.generation", Some("failure")).is_empty());
}

/// The official `openai` SDK speaks and draws through Ayush unmodified.
#[test]
#[cfg_attr(not(peer_python), ignore = "needs the test venv: run .ci/peers")]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng and lame: run .ci/peers")]
fn the_openai_sdk_speaks_and_draws_through_ayush() {
    let upstream = Upstream::start(2);
    let (server, _admin, key) = set_up(&upstream, "");
    let python = ayush_tests::venv_python("openai", "tests/openai/requirements.txt");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("made");
    let out = std::process::Command::new(python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openai/speech_images.py"))
        .env("AYUSH_BASE_URL", format!("{}/v1", server.url))
        .env("AYUSH_KEY", &key)
        .env("AYUSH_SPEECH_MODEL", "up-openai/tts-1")
        .env("AYUSH_IMAGE_MODEL", "up-openai/gpt-image-1")
        .env("AYUSH_OUT", &prefix)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (seen["images"].as_u64(), seen["revised_prompt"].as_str()),
        (Some(2), Some("a fox, drawn")),
        "{seen}"
    );
    let mp3 = std::fs::read(prefix.with_extension("mp3")).unwrap();
    assert!(seconds_of(&mp3, "made.mp3") > 1.5, "{seen}");
    assert_eq!(png_size(&std::fs::read(prefix.with_extension("png")).unwrap()), (256, 256));
    assert_eq!(seen["wrong_model"]["status"], 400, "{seen}");
    assert!(seen["wrong_model"]["message"].as_str().unwrap().contains("is not a speech model"), "{seen}");
}

/// In the chat, an image model answers with the image: kept with the conversation, shown to
/// its owner only, downloadable.
#[test]
fn an_image_model_answers_in_the_chat_and_the_image_stays_with_the_conversation() {
    let upstream = Upstream::start(2);
    let (server, _admin, _key) = set_up(&upstream, "");
    server.create_user("bo", "user", "bo password 1");
    let mut amira = server.client();
    assert_eq!(amira.login("amira", "amira password 1").status, 200);
    let created = amira.send_json("POST", "/api/conversations", &json!({"model": "up-ideogram/V_3"}));
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["id"].as_i64().unwrap();
    let sent = amira.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "a lighthouse at dusk"}),
    );
    assert_eq!(sent.status, 200, "{}", sent.body);
    let events = sse_events(&sent.body);
    let (name, done) = events.last().unwrap();
    assert_eq!(name, "done", "{events:?}");
    let images = done["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert!(done["item"].as_str().unwrap().contains(&format!("/chat/images/{}", images[0])), "{done}");

    let opened = amira.get(&format!("/api/conversations/{id}")).json();
    let messages = opened["messages"].as_array().unwrap();
    assert_eq!(
        (messages[0]["role"].as_str(), messages[0]["content"].as_str()),
        (Some("user"), Some("a lighthouse at dusk"))
    );
    let url = messages[1]["images"][0].as_str().unwrap().to_string();
    let image = amira.get(&url);
    assert_eq!((image.status, image.header("content-type")), (200, Some("image/png")));
    assert_eq!(png_size(&image.bytes), (64, 64));
    let saved = amira.get(&format!("{url}?download=1"));
    assert!(
        saved.header("content-disposition").unwrap().starts_with("attachment; filename=\"image-"),
        "{:?}",
        saved.headers
    );
    let page = amira.get(&format!("/chat?c={id}"));
    assert!(page.body.contains(&format!("src=\"{url}\"")) && page.body.contains("Download image 1"));
    // The usage record's source is the chat; the audit event names the message.
    let event = server.audit_events("image.generation", Some("success")).pop().unwrap();
    let details: Value = serde_json::from_str(&event.details).unwrap();
    assert_eq!(
        (details["source"].as_str(), details["conversation_id"].as_i64()),
        (Some("chat.image"), Some(id))
    );

    // Someone else finds no such image.
    let mut bo = server.client();
    assert_eq!(bo.login("bo", "bo password 1").status, 200);
    assert_eq!(bo.get(&url).status, 404);
    // A vendor that fails leaves the message and a reply that says why.
    let failed = amira.send_json(
        "POST",
        &format!("/api/conversations/{id}/messages"),
        &json!({"content": "something forbidden", "model": "up-flux/flux-dev"}),
    );
    let events = sse_events(&failed.body);
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "error", "{events:?}");
    assert!(error["message"].as_str().unwrap().contains("moderation refused"), "{error}");
    let after = amira.get(&format!("/api/conversations/{id}")).json();
    assert_eq!(after["messages"].as_array().unwrap().len(), 4);
    // The conversation goes, its images with it.
    assert_eq!(amira.send_json("DELETE", &format!("/api/conversations/{id}"), &json!({})).status, 204);
    assert_eq!(amira.get(&url).status, 404);
}

/// Read aloud in the browser: the answer's text goes to the speech model, and the audio plays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(peer_browser), ignore = "needs chromium and chromium-driver: run .ci/peers")]
#[cfg_attr(not(peer_espeak), ignore = "needs espeak-ng and lame: run .ci/peers")]
async fn answers_are_read_aloud_and_images_drawn_in_the_browser() {
    use ayush_tests::browser::{Browser, console_errors, sign_in, snap, text_when};
    use fantoccini::Locator;
    let upstream = Upstream::start(2);
    let server = tokio::task::spawn_blocking(move || {
        let speech = "[speech]\nread_aloud_model = \"up-openai/tts-1\"\nread_aloud_voice = \"nova\"\n";
        let (server, _, _) = set_up(&upstream, speech);
        (server, upstream)
    })
    .await
    .unwrap();
    let (server, upstream) = server;
    let browser = Browser::launch_with(&["--autoplay-policy=no-user-gesture-required".to_string()]).await;
    let c = &browser.client;
    sign_in(c, &server.url, "amira", "amira password 1").await;
    ayush_tests::browser::text_of(c, "a.new-chat").await;
    c.goto(&format!("{}/chat", server.url)).await.unwrap();
    c.find(Locator::Css("#model option[value='up-openai/echo']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("hello there").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant[data-id] .body", "Echo: hello there").await;
    let read = c.find(Locator::Css(".msg.assistant[data-id] .read-aloud")).await.unwrap();
    assert_eq!(read.text().await.unwrap(), "Read aloud");
    read.click().await.unwrap();
    let mut state = String::new();
    for _ in 0..100 {
        state = read.attr("data-state").await.unwrap().unwrap_or_default();
        if state == "playing" || state == "failed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = text_when(c, ".msg.assistant[data-id] .read-aloud-status", "").await;
    assert_eq!(state, "playing", "{status}");
    let spoken = upstream.received("/v1/audio/speech");
    let asked = &spoken.last().expect("the speech model was asked").body;
    assert_eq!((asked["input"].as_str(), asked["voice"].as_str()), (Some("Echo: hello there"), Some("nova")));
    snap(c, "read-aloud").await;

    // An image model from the picker draws the message.
    c.find(Locator::Css("#model option[value='up-ideogram/V_3']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("#prompt")).await.unwrap().send_keys("a lighthouse at dusk").await.unwrap();
    c.find(Locator::Css("#send")).await.unwrap().click().await.unwrap();
    text_when(c, ".msg.assistant figure.drawn figcaption", "Download image 1").await;
    let shown: bool = c
        .execute("return [...document.querySelectorAll('figure.drawn img')].every(i => i.complete && i.naturalWidth === 64)", vec![])
        .await
        .unwrap()
        .as_bool()
        .unwrap();
    assert!(shown, "the image is shown");
    snap(c, "image-answer").await;
    assert_eq!(console_errors(c).await, Vec::<String>::new());
    browser.close().await;
}
