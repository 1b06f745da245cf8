//! Speech and images from providers. OpenAI's `/audio/speech` and `/images/generations` (and
//! the servers that copy them); ElevenLabs' text to speech; Black Forest Labs' Flux, a task
//! polled until its image is ready; Ideogram. Each vendor's answer becomes the same `Speech`
//! or `Image`s, checked to be what it claims before anyone is handed it.

use super::{Kind, Remote, SMALL_BODY, UpstreamKind, upstream};
use crate::ModelError;
use base64::Engine as _;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The most audio or image bytes one answer may bring.
const MAX_MEDIA: usize = 64 << 20;
/// How often a Flux task is asked whether its image is ready.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// What a provider's model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Chat,
    Speech,
    Image,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Chat => "chat",
            Purpose::Speech => "speech",
            Purpose::Image => "image",
        }
    }

    /// "an image model", for messages that say what a model is.
    pub fn a_model(self) -> &'static str {
        match self {
            Purpose::Chat => "a chat model",
            Purpose::Speech => "a speech model",
            Purpose::Image => "an image model",
        }
    }
}

/// The audio formats `/v1/audio/speech` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioFormat {
    Mp3,
    Opus,
    Aac,
    Flac,
    Wav,
    /// 16-bit little-endian samples at 24 kHz, one channel, no header.
    Pcm,
}

impl AudioFormat {
    pub const ALL: [AudioFormat; 6] = [
        AudioFormat::Mp3,
        AudioFormat::Opus,
        AudioFormat::Aac,
        AudioFormat::Flac,
        AudioFormat::Wav,
        AudioFormat::Pcm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Opus => "opus",
            AudioFormat::Aac => "aac",
            AudioFormat::Flac => "flac",
            AudioFormat::Wav => "wav",
            AudioFormat::Pcm => "pcm",
        }
    }

    pub fn parse(s: &str) -> Option<AudioFormat> {
        AudioFormat::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Opus => "audio/ogg",
            AudioFormat::Aac => "audio/aac",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Pcm => "audio/pcm",
        }
    }
}

/// Text to be spoken.
#[derive(Debug, Clone)]
pub struct SpeechRequest {
    /// The model's id at the provider.
    pub model: String,
    pub input: String,
    /// OpenAI's voice name, or ElevenLabs' voice id.
    pub voice: String,
    pub format: AudioFormat,
    pub speed: Option<f64>,
    /// How to speak (OpenAI's `gpt-4o-mini-tts`).
    pub instructions: Option<String>,
}

pub struct Speech {
    pub audio: Vec<u8>,
    pub format: AudioFormat,
}

/// The image formats answers are accepted in, told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Png,
    Jpeg,
    Webp,
}

impl ImageFormat {
    pub fn sniff(bytes: &[u8]) -> Option<ImageFormat> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageFormat::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(ImageFormat::Jpeg)
        } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(ImageFormat::Webp)
        } else {
            None
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
            ImageFormat::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Png => "png",
            ImageFormat::Jpeg => "jpg",
            ImageFormat::Webp => "webp",
        }
    }
}

/// Images to be drawn.
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// The model's id at the provider.
    pub model: String,
    pub prompt: String,
    pub n: u32,
    pub width: u32,
    pub height: u32,
}

pub struct Image {
    pub bytes: Vec<u8>,
    pub format: ImageFormat,
    /// The prompt as the provider rewrote it, where it says.
    pub revised_prompt: Option<String>,
}

/// The headers that carry a media vendor's key.
pub(crate) fn key_headers(kind: Kind, key: Option<&str>) -> Vec<(&'static str, String)> {
    let name = match kind {
        Kind::ElevenLabs => "xi-api-key",
        Kind::Bfl => "x-key",
        Kind::Ideogram => "api-key",
        Kind::OpenAi | Kind::Anthropic | Kind::Gemini => return Vec::new(),
    };
    key.map(|k| vec![(name, k.to_string())]).unwrap_or_default()
}

/// The human part of a media vendor's error body: `{"error": {"message"}}` (OpenAI),
/// `{"detail": {"message"}}` (ElevenLabs), `{"detail": "…"}` or `{"detail": [{"msg"}]}`
/// (Black Forest Labs, Ideogram).
pub(crate) fn error_detail(body: &Value) -> String {
    let detail = body.get("detail");
    if let Some(m) = detail.and_then(|d| d.get("message")).and_then(Value::as_str) {
        return m.to_string();
    }
    if let Some(s) = detail.and_then(Value::as_str) {
        return s.to_string();
    }
    if let Some(items) = detail.and_then(Value::as_array) {
        let msgs: Vec<&str> = items.iter().filter_map(|i| i.get("msg").and_then(Value::as_str)).collect();
        if !msgs.is_empty() {
            return msgs.join("; ");
        }
    }
    super::error_message(body)
}

/// 16-bit mono samples at `rate` in a WAV file.
fn wav_of_pcm(pcm: &[u8], rate: u32) -> Vec<u8> {
    let len = pcm.len() as u32;
    let mut out = Vec::with_capacity(44 + pcm.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(pcm);
    out
}

/// Whether `audio` starts as `format` does; PCM has no header to check.
fn looks_like(format: AudioFormat, audio: &[u8]) -> bool {
    match format {
        AudioFormat::Mp3 => {
            audio.starts_with(b"ID3") || (audio.len() > 1 && audio[0] == 0xff && audio[1] & 0xe0 == 0xe0)
        }
        AudioFormat::Opus => audio.starts_with(b"OggS"),
        AudioFormat::Aac => {
            audio.len() > 1 && audio[0] == 0xff && audio[1] & 0xf0 == 0xf0 || audio.get(4..8) == Some(b"ftyp")
        }
        AudioFormat::Flac => audio.starts_with(b"fLaC"),
        AudioFormat::Wav => audio.starts_with(b"RIFF") && audio.get(8..12) == Some(b"WAVE"),
        AudioFormat::Pcm => audio.len().is_multiple_of(2),
    }
}

/// Whether `s` can go into a URL's path or query as it is: an id or a voice's name.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The lowest terms of `width`:`height`, as `16x9`.
fn aspect(width: u32, height: u32) -> (u32, u32) {
    fn gcd(a: u32, b: u32) -> u32 {
        if b == 0 { a } else { gcd(b, a % b) }
    }
    let g = gcd(width, height).max(1);
    (width / g, height / g)
}

/// The aspect ratios Ideogram draws.
const IDEOGRAM_ASPECTS: [(u32, u32); 15] = [
    (1, 1),
    (1, 3),
    (3, 1),
    (1, 2),
    (2, 1),
    (9, 16),
    (16, 9),
    (10, 16),
    (16, 10),
    (2, 3),
    (3, 2),
    (3, 4),
    (4, 3),
    (4, 5),
    (5, 4),
];

/// A multipart/form-data body of text fields, with a boundary none of them contains.
fn form_data(fields: &[(&str, String)]) -> (String, Vec<u8>) {
    let mut boundary = String::from("ayush-form-boundary");
    while fields.iter().any(|(_, v)| v.contains(&boundary)) {
        boundary.push('x');
    }
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\ncontent-disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl Remote {
    fn failed(&self, detail: &str) -> ModelError {
        upstream(UpstreamKind::Failed, &self.spec.name, detail)
    }

    /// Sends `body` to `path` and reads the whole answer, refused past [`MAX_MEDIA`].
    async fn media_call(
        &self,
        method: hyper::Method,
        path_or_url: &str,
        body: Option<(String, Vec<u8>)>,
        with_key: bool,
    ) -> Result<Vec<u8>, ModelError> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.spec.base_url.trim_end_matches('/'))
        };
        let mut builder = hyper::Request::builder().method(method).uri(&url).header("accept", "*/*");
        if with_key {
            for (name, value) in self.auth_headers() {
                builder = builder.header(name, value);
            }
        }
        let bytes = match body {
            Some((content_type, b)) => {
                builder = builder.header("content-type", content_type);
                b
            }
            None => Vec::new(),
        };
        let request = builder.body(http_body_util::Full::new(bytes::Bytes::from(bytes))).map_err(|e| {
            upstream(UpstreamKind::BadRequest, &self.spec.name, &format!("building {url}: {e}"))
        })?;
        let mut answer = self.call(request).await?;
        let mut out = Vec::new();
        while let Some(chunk) =
            self.transport.next_chunk(&mut answer).await.map_err(|e| self.send_error(e))?
        {
            if out.len() + chunk.len() > MAX_MEDIA {
                return Err(self.failed(&format!("its answer is larger than {} MiB", MAX_MEDIA >> 20)));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    async fn media_json(&self, path: &str, body: &Value) -> Result<Value, ModelError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ModelError::Inference(e.to_string()))?;
        let answer = self
            .media_call(hyper::Method::POST, path, Some(("application/json".into(), bytes)), true)
            .await?;
        self.json_of(&answer)
    }

    fn json_of(&self, bytes: &[u8]) -> Result<Value, ModelError> {
        serde_json::from_slice(bytes).map_err(|e| self.failed(&format!("its answer is not JSON: {e}")))
    }

    /// An image the provider left at a URL: fetched through the egress policy like any other
    /// connection, without the key (the URL is signed), and only over https (or to this
    /// machine).
    async fn fetch_image(&self, url: &str) -> Result<Image, ModelError> {
        super::check_base_url(url.split('?').next().unwrap_or(url))
            .map_err(|e| self.failed(&format!("its image is at a URL Ayush will not fetch: {e}")))?;
        let bytes = self.media_call(hyper::Method::GET, url, None, false).await?;
        self.image(bytes, None)
    }

    fn image(&self, bytes: Vec<u8>, revised_prompt: Option<String>) -> Result<Image, ModelError> {
        let format = ImageFormat::sniff(&bytes)
            .ok_or_else(|| self.failed("what it sent as an image is not a PNG, JPEG or WebP file"))?;
        Ok(Image { bytes, format, revised_prompt })
    }

    /// Speaks `request.input`.
    pub async fn speech(&self, request: SpeechRequest) -> Result<Speech, ModelError> {
        let format = request.format;
        let audio = match self.spec.kind {
            Kind::OpenAi => {
                let mut body = json!({
                    "model": request.model,
                    "input": request.input,
                    "voice": request.voice,
                    "response_format": format.as_str(),
                });
                if let Some(s) = request.speed {
                    body["speed"] = json!(s);
                }
                if let Some(i) = &request.instructions {
                    body["instructions"] = json!(i);
                }
                let bytes = serde_json::to_vec(&body).map_err(|e| ModelError::Inference(e.to_string()))?;
                self.media_call(
                    hyper::Method::POST,
                    "/audio/speech",
                    Some(("application/json".into(), bytes)),
                    true,
                )
                .await?
            }
            Kind::ElevenLabs => {
                if !is_token(&request.voice) {
                    return Err(ModelError::BadRequest(format!(
                        "{}: {:?} is not an ElevenLabs voice id (letters, digits, '-' and '_')",
                        self.spec.name, request.voice
                    )));
                }
                let output = match format {
                    AudioFormat::Mp3 => "mp3_44100_128",
                    AudioFormat::Pcm | AudioFormat::Wav => "pcm_24000",
                    other => {
                        return Err(ModelError::BadRequest(format!(
                            "{} speaks mp3, wav or pcm, not {}",
                            self.spec.name,
                            other.as_str()
                        )));
                    }
                };
                let mut body = json!({"text": request.input, "model_id": request.model});
                if let Some(s) = request.speed {
                    body["voice_settings"] = json!({"speed": s});
                }
                let bytes = serde_json::to_vec(&body).map_err(|e| ModelError::Inference(e.to_string()))?;
                let path = format!("/v1/text-to-speech/{}?output_format={output}", request.voice);
                let pcm = self
                    .media_call(hyper::Method::POST, &path, Some(("application/json".into(), bytes)), true)
                    .await?;
                if format == AudioFormat::Wav { wav_of_pcm(&pcm, 24_000) } else { pcm }
            }
            _ => return Err(self.does_not("speak")),
        };
        if audio.is_empty() || !looks_like(format, &audio) {
            return Err(self.failed(&format!("what it sent is not {} audio", format.as_str())));
        }
        Ok(Speech { audio, format })
    }

    /// Draws `request.n` images of `request.prompt`.
    pub async fn images(&self, request: ImageRequest) -> Result<Vec<Image>, ModelError> {
        let images = match self.spec.kind {
            Kind::OpenAi => self.openai_images(&request).await?,
            Kind::Bfl => {
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..request.n {
                    let (this, r) = (self.clone(), request.clone());
                    tasks.spawn(async move { this.flux(&r).await });
                }
                let mut out = Vec::new();
                while let Some(done) = tasks.join_next().await {
                    out.push(done.map_err(|e| ModelError::Inference(e.to_string()))??);
                }
                out
            }
            Kind::Ideogram => self.ideogram(&request).await?,
            _ => return Err(self.does_not("draw images")),
        };
        if images.is_empty() {
            return Err(self.failed("it sent no image"));
        }
        Ok(images)
    }

    fn does_not(&self, what: &str) -> ModelError {
        ModelError::BadRequest(format!("{} ({}) does not {what}", self.spec.name, self.spec.kind.as_str()))
    }

    async fn openai_images(&self, r: &ImageRequest) -> Result<Vec<Image>, ModelError> {
        let mut body = json!({
            "model": r.model, "prompt": r.prompt, "n": r.n, "size": format!("{}x{}", r.width, r.height),
        });
        // DALL·E answers with a URL unless told otherwise; GPT Image always inline and
        // refuses the field.
        if r.model.starts_with("dall-e") {
            body["response_format"] = json!("b64_json");
        }
        let answer = self.media_json("/images/generations", &body).await?;
        let data = answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut out = Vec::new();
        for item in data {
            let revised = item.get("revised_prompt").and_then(Value::as_str).map(str::to_string);
            if let Some(b64) = item.get("b64_json").and_then(Value::as_str) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| self.failed(&format!("its image is not base64: {e}")))?;
                out.push(self.image(bytes, revised)?);
            } else if let Some(url) = item.get("url").and_then(Value::as_str) {
                let mut image = self.fetch_image(url).await?;
                image.revised_prompt = revised;
                out.push(image);
            }
        }
        Ok(out)
    }

    /// One Flux image: a task is submitted, then polled until it is ready.
    async fn flux(&self, r: &ImageRequest) -> Result<Image, ModelError> {
        for (side, v) in [("width", r.width), ("height", r.height)] {
            if !v.is_multiple_of(32) || !(256..=1440).contains(&v) {
                return Err(ModelError::BadRequest(format!(
                    "{}: Flux draws {side}s that are multiples of 32 from 256 to 1440, not {v}",
                    self.spec.name
                )));
            }
        }
        let body = json!({"prompt": r.prompt, "width": r.width, "height": r.height, "output_format": "png"});
        let task = self.media_json(&format!("/v1/{}", r.model), &body).await?;
        let id = task
            .get("id")
            .and_then(Value::as_str)
            .filter(|id| is_token(id))
            .ok_or_else(|| self.failed("it gave no usable task id"))?;
        // The key goes only to the server it was given for; a polling URL elsewhere (a
        // region) is replaced by the same question asked of the base URL.
        let polling = task
            .get("polling_url")
            .and_then(Value::as_str)
            .filter(|u| {
                super::origin_of(u).is_some() && super::origin_of(u) == super::origin_of(&self.spec.base_url)
            })
            .map(str::to_string)
            .unwrap_or_else(|| format!("/v1/get_result?id={id}"));
        let deadline = Instant::now() + self.transport.timeout;
        loop {
            let answer = self.media_call(hyper::Method::GET, &polling, None, true).await?;
            let state = self.json_of(&answer)?;
            let status = state.get("status").and_then(Value::as_str).unwrap_or_default();
            match status {
                "Ready" => {
                    let url = state
                        .pointer("/result/sample")
                        .and_then(Value::as_str)
                        .ok_or_else(|| self.failed("its finished task names no image"))?;
                    return self.fetch_image(url).await;
                }
                "Pending" | "Queued" | "Processing" => {}
                "Request Moderated" | "Content Moderated" => {
                    return Err(upstream(
                        UpstreamKind::BadRequest,
                        &self.spec.name,
                        &format!("its moderation refused the prompt ({status})"),
                    ));
                }
                other => return Err(self.failed(&format!("the task ended as {other:?}"))),
            }
            if Instant::now() + POLL_EVERY > deadline {
                return Err(upstream(
                    UpstreamKind::Timeout,
                    &self.spec.name,
                    &format!("the image was not ready in {} s", self.transport.timeout.as_secs()),
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn ideogram(&self, r: &ImageRequest) -> Result<Vec<Image>, ModelError> {
        let (w, h) = aspect(r.width, r.height);
        if !IDEOGRAM_ASPECTS.contains(&(w, h)) {
            let known: Vec<String> = IDEOGRAM_ASPECTS.iter().map(|(a, b)| format!("{a}:{b}")).collect();
            return Err(ModelError::BadRequest(format!(
                "{}: Ideogram draws the aspect ratios {}, not {w}:{h}",
                self.spec.name,
                known.join(", ")
            )));
        }
        let answer = if r.model.eq_ignore_ascii_case("V_3") {
            let (content_type, body) = form_data(&[
                ("prompt", r.prompt.clone()),
                ("num_images", r.n.to_string()),
                ("aspect_ratio", format!("{w}x{h}")),
            ]);
            let bytes = self
                .media_call(hyper::Method::POST, "/v1/ideogram-v3/generate", Some((content_type, body)), true)
                .await?;
            self.json_of(&bytes)?
        } else {
            let body = json!({"image_request": {
                "prompt": r.prompt, "model": r.model, "num_images": r.n, "aspect_ratio": format!("ASPECT_{w}_{h}"),
            }});
            self.media_json("/generate", &body).await?
        };
        let mut out = Vec::new();
        for item in answer.get("data").and_then(Value::as_array).cloned().unwrap_or_default() {
            if item.get("is_image_safe").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            if let Some(url) = item.get("url").and_then(Value::as_str) {
                let mut image = self.fetch_image(url).await?;
                image.revised_prompt = item.get("prompt").and_then(Value::as_str).map(str::to_string);
                out.push(image);
            }
        }
        if out.is_empty() {
            return Err(upstream(
                UpstreamKind::BadRequest,
                &self.spec.name,
                "its safety check withheld every image",
            ));
        }
        Ok(out)
    }

    /// ElevenLabs' models that speak, as its `/v1/models` lists them.
    pub(crate) async fn elevenlabs_models(&self) -> Result<Vec<String>, ModelError> {
        let answer = self.media_call(hyper::Method::GET, "/v1/models", None, true).await?;
        let list = self.json_of(&answer[..answer.len().min(SMALL_BODY)])?;
        Ok(list
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|m| m.get("can_do_text_to_speech").and_then(Value::as_bool) != Some(false))
                    .filter_map(|m| m.get("model_id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_told_by_their_first_bytes() {
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::sniff(b"<svg/>"), None);
        assert!(looks_like(AudioFormat::Mp3, b"ID3\x04"));
        assert!(looks_like(AudioFormat::Mp3, &[0xff, 0xfb, 0x90]));
        assert!(!looks_like(AudioFormat::Mp3, b"{\"error\""));
        assert!(looks_like(AudioFormat::Flac, b"fLaC\0"));
        assert!(looks_like(AudioFormat::Opus, b"OggS\0"));
    }

    #[test]
    fn pcm_becomes_a_wav_file_symphonia_reads() {
        let samples: Vec<u8> = (0..2400i16).flat_map(|i| ((i % 100) * 100).to_le_bytes()).collect();
        let wav = wav_of_pcm(&samples, 24_000);
        assert!(looks_like(AudioFormat::Wav, &wav));
        let decoded = crate::audio::decode(wav, Some("x.wav"), 10).unwrap();
        // 0.1 s at 24 kHz is 0.1 s at 16 kHz.
        assert!((decoded.len() as i64 - 1600).abs() < 20, "{}", decoded.len());
    }

    #[test]
    fn aspect_ratios_and_forms() {
        assert_eq!(aspect(1024, 1024), (1, 1));
        assert_eq!(aspect(1792, 1024), (7, 4));
        assert_eq!(aspect(1536, 1024), (3, 2));
        let (ct, body) = form_data(&[("prompt", "a cat".into()), ("n", "1".into())]);
        let boundary = ct.split("boundary=").nth(1).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"prompt\"\r\n\r\na cat\r\n"));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }

    #[test]
    fn error_bodies_of_each_vendor_are_read() {
        assert_eq!(
            error_detail(&json!({"detail": {"status": "x", "message": "voice not found"}})),
            "voice not found"
        );
        assert_eq!(error_detail(&json!({"detail": "Not authenticated"})), "Not authenticated");
        assert_eq!(error_detail(&json!({"detail": [{"msg": "width too big"}]})), "width too big");
        assert_eq!(error_detail(&json!({"error": {"message": "bad"}})), "bad");
    }
}
