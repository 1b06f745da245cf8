//! The fake's speech and image vendors, as their references document them, answering with real
//! audio (espeak-ng speaks the text; lame makes MP3s of it) and real PNGs:
//!
//! | path | vendor | answer |
//! | --- | --- | --- |
//! | `POST /v1/audio/speech` | OpenAI | the input spoken, in `response_format` (mp3, wav, pcm) |
//! | `POST /v1/images/generations` | OpenAI | `n` PNGs of `size`, inline for `gpt-image*` or when `b64_json` is asked, else as URLs |
//! | `GET /v1/models` with `xi-api-key` | ElevenLabs | its models |
//! | `POST /v1/text-to-speech/VOICE?output_format=F` | ElevenLabs | mp3, or 24 kHz PCM; voice `missing-voice` is not found |
//! | `POST /v1/MODEL` with `x-key`, then `GET /v1/get_result?id=` | Black Forest Labs | a task, pending on its first poll, then ready with a PNG's URL; a prompt with "forbidden" is moderated |
//! | `POST /v1/ideogram-v3/generate` (multipart), `POST /generate` (JSON) | Ideogram | PNGs of the aspect ratio, by URL |
//! | `GET /files/WxH.png` | any | a W×H PNG, no key needed (the URL is the signature) |

use super::{Body, KEY, Recorded, json_reply};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// How often each Flux task has been polled.
static POLLS: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

fn bytes_reply(content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(http_body_util::Either::Left(Full::new(Bytes::from(bytes))))
        .expect("response")
}

/// A `width`×`height` RGB gradient, as a PNG file.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().expect("PNG header");
        let data: Vec<u8> = (0..width * height)
            .flat_map(|i| {
                let (x, y) = (i % width, i / width);
                [(x * 255 / width) as u8, (y * 255 / height) as u8, 128]
            })
            .collect();
        writer.write_image_data(&data).expect("PNG data");
    }
    out
}

/// `text` spoken by espeak-ng, as a WAV file (22,050 Hz, 16-bit, mono).
pub fn spoken_wav(text: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let wav = dir.path().join("said.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng (.ci/peers installs it)");
    assert!(status.success());
    std::fs::read(wav).expect("espeak-ng's WAV")
}

/// A WAV file as an MP3 (lame).
fn mp3_of(wav: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.mp3"));
    std::fs::write(&input, wav).expect("write WAV");
    let status = std::process::Command::new("lame")
        .arg("--quiet")
        .arg(&input)
        .arg(&output)
        .status()
        .expect("lame (.ci/peers installs it)");
    assert!(status.success());
    std::fs::read(output).expect("lame's MP3")
}

/// A 16-bit mono WAV's samples, resampled to 24 kHz (linearly: enough for a test) with no
/// header, as OpenAI's and ElevenLabs' `pcm` is.
fn pcm_24k(wav: &[u8]) -> Vec<u8> {
    let rate = u32::from_le_bytes(wav[24..28].try_into().expect("rate")) as f64;
    let data = wav.windows(4).position(|w| w == b"data").expect("a data chunk") + 8;
    let samples: Vec<f64> =
        wav[data..].chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as f64).collect();
    let n = (samples.len() as f64 * 24_000.0 / rate) as usize;
    (0..n)
        .flat_map(|i| {
            let at = i as f64 * rate / 24_000.0;
            let (j, f) = (at as usize, at.fract());
            let (a, b) = (samples[j.min(samples.len() - 1)], samples[(j + 1).min(samples.len() - 1)]);
            ((a + (b - a) * f) as i16).to_le_bytes()
        })
        .collect()
}

async fn speech(text: String, format: &str) -> Response<Body> {
    let format = format.to_string();
    let made = tokio::task::spawn_blocking(move || {
        let wav = spoken_wav(&text);
        match format.as_str() {
            "mp3" => ("audio/mpeg", mp3_of(&wav)),
            "pcm" => ("audio/pcm", pcm_24k(&wav)),
            _ => ("audio/wav", wav),
        }
    })
    .await
    .expect("speech");
    bytes_reply(made.0, made.1)
}

fn image_url(host: &str, width: u32, height: u32) -> String {
    format!("http://{host}/files/{width}x{height}.png")
}

fn size_of(text: &str) -> (u32, u32) {
    let (w, h) = text.split_once('x').unwrap_or(("1024", "1024"));
    (w.parse().unwrap_or(1024), h.parse().unwrap_or(1024))
}

/// A multipart form's text fields.
fn form_fields(body: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for part in body.split("--ayush-form-boundary") {
        let Some((head, value)) = part.split_once("\r\n\r\n") else { continue };
        let Some(name) = head.split("name=\"").nth(1).and_then(|n| n.split('"').next()) else { continue };
        out.insert(name.to_string(), value.trim_end_matches("\r\n").to_string());
    }
    out
}

/// The answer to `req` if it is one of the media vendors' requests.
pub(super) async fn answer(req: &Recorded) -> Option<Response<Body>> {
    let host = req.header("host").unwrap_or("127.0.0.1").to_string();
    let (path, query) = req.path.split_once('?').unwrap_or((req.path.as_str(), ""));
    let bearer = req.header("authorization") == Some(&format!("Bearer {KEY}"));
    let denied = || json_reply(401, json!({"detail": "Invalid API key"}));
    if let Some(size) = path.strip_prefix("/files/").and_then(|f| f.strip_suffix(".png")) {
        let (w, h) = size_of(size);
        return Some(bytes_reply("image/png", png(w, h)));
    }
    if path == "/v1/audio/speech" {
        if !bearer {
            return Some(json_reply(
                401,
                json!({"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}),
            ));
        }
        let text = req.body["input"].as_str().unwrap_or_default().to_string();
        return Some(speech(text, req.body["response_format"].as_str().unwrap_or("mp3")).await);
    }
    if path == "/v1/images/generations" {
        if !bearer {
            return Some(json_reply(
                401,
                json!({"error": {"message": "Incorrect API key provided.", "code": "invalid_api_key"}}),
            ));
        }
        let (w, h) = size_of(req.body["size"].as_str().unwrap_or("1024x1024"));
        let model = req.body["model"].as_str().unwrap_or_default();
        let inline = model.starts_with("gpt-image") || req.body["response_format"] == "b64_json";
        let n = req.body["n"].as_u64().unwrap_or(1);
        let data: Vec<Value> = (0..n)
            .map(|_| {
                use base64::Engine as _;
                if inline {
                    json!({"b64_json": base64::engine::general_purpose::STANDARD.encode(png(w, h)), "revised_prompt": "a fox, drawn"})
                } else {
                    json!({"url": image_url(&host, w, h)})
                }
            })
            .collect();
        return Some(json_reply(200, json!({"created": 1, "data": data})));
    }
    if path == "/v1/models" && req.header("xi-api-key").is_some() {
        if req.header("xi-api-key") != Some(KEY) {
            return Some(denied());
        }
        return Some(json_reply(
            200,
            json!([{"model_id": "eleven_multilingual_v2", "can_do_text_to_speech": true},
                   {"model_id": "eleven_english_sts_v2", "can_do_text_to_speech": false}]),
        ));
    }
    if let Some(voice) = path.strip_prefix("/v1/text-to-speech/") {
        if req.header("xi-api-key") != Some(KEY) {
            return Some(denied());
        }
        if voice == "missing-voice" {
            return Some(json_reply(
                404,
                json!({"detail": {"status": "voice_not_found", "message": "A voice with the voice_id missing-voice was not found."}}),
            ));
        }
        let format = if query.contains("output_format=pcm_24000") { "pcm" } else { "mp3" };
        let text = req.body["text"].as_str().unwrap_or_default().to_string();
        return Some(speech(text, format).await);
    }
    if path == "/v1/get_result" {
        if req.header("x-key") != Some(KEY) {
            return Some(denied());
        }
        let id = query.strip_prefix("id=").unwrap_or_default().to_string();
        let polls = {
            let mut all = POLLS.lock().expect("polls");
            let n = all.get_or_insert_with(HashMap::new).entry(id.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let (kind, size) = id.split_once('-').unwrap_or(("ok", "512x512"));
        let (w, h) = size_of(size.split('-').next().unwrap_or("512x512"));
        let state = match (kind, polls) {
            (_, 1) => json!({"id": id, "status": "Pending"}),
            ("moderated", _) => json!({"id": id, "status": "Request Moderated"}),
            _ => json!({"id": id, "status": "Ready", "result": {"sample": image_url(&host, w, h)}}),
        };
        return Some(json_reply(200, state));
    }
    if path.starts_with("/v1/flux") {
        if req.header("x-key") != Some(KEY) {
            return Some(denied());
        }
        let kind = if req.body["prompt"].as_str().unwrap_or_default().contains("forbidden") {
            "moderated"
        } else {
            "ok"
        };
        let (w, h) = (req.body["width"].as_u64().unwrap_or(1024), req.body["height"].as_u64().unwrap_or(768));
        let id = format!("{kind}-{w}x{h}-{}", POLLS.lock().expect("polls").as_ref().map_or(0, HashMap::len));
        return Some(json_reply(
            200,
            json!({"id": id, "polling_url": format!("http://{host}/v1/get_result?id={id}")}),
        ));
    }
    let ideogram = |aspect: &str, n: u64| {
        let (a, b) = aspect.split_once(['x', '_']).unwrap_or(("1", "1"));
        let (a, b): (u32, u32) = (a.parse().unwrap_or(1), b.parse().unwrap_or(1));
        let data: Vec<Value> = (0..n)
            .map(|_| json!({"url": image_url(&host, 64 * a, 64 * b), "prompt": "a fox, as Ideogram read it", "is_image_safe": true, "seed": 7}))
            .collect();
        json_reply(200, json!({"created": "2026-12-06T00:00:00Z", "data": data}))
    };
    if path == "/v1/ideogram-v3/generate" {
        if req.header("api-key") != Some(KEY) {
            return Some(denied());
        }
        let fields = form_fields(req.body.as_str().unwrap_or_default());
        let n = fields.get("num_images").and_then(|n| n.parse().ok()).unwrap_or(1);
        return Some(ideogram(fields.get("aspect_ratio").map_or("1x1", String::as_str), n));
    }
    if path == "/generate" {
        if req.header("api-key") != Some(KEY) {
            return Some(denied());
        }
        let r = &req.body["image_request"];
        let aspect =
            r["aspect_ratio"].as_str().unwrap_or("ASPECT_1_1").trim_start_matches("ASPECT_").to_string();
        return Some(ideogram(&aspect, r["num_images"].as_u64().unwrap_or(1)));
    }
    None
}
