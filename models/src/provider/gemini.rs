//! Google's Gemini API: `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse`,
//! answered by `data:` chunks each holding a `GenerateContentResponse`; the stream ends with
//! the body. The assistant's role is called `model`, and system text goes in
//! `systemInstruction`.

use super::{Progress, SseEvent, UpstreamKind, Wire, WireRequest, kind_for_status, upstream};
use crate::ModelError;
use crate::model::FinishReason;
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use serde_json::{Value, json};

pub(crate) struct Gemini;

fn count(v: &Value, key: &str) -> usize {
    v.get(key).and_then(Value::as_u64).unwrap_or(0) as usize
}

fn kind_of(status: u16, body: &Value) -> UpstreamKind {
    let state = body.pointer("/error/status").and_then(Value::as_str).unwrap_or_default();
    let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
    let bad_key = body
        .pointer("/error/details")
        .and_then(Value::as_array)
        .is_some_and(|d| d.iter().any(|x| x["reason"] == "API_KEY_INVALID"));
    match state {
        _ if bad_key => UpstreamKind::BadKey,
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => UpstreamKind::BadKey,
        "NOT_FOUND" => UpstreamKind::ModelNotFound,
        "RESOURCE_EXHAUSTED" => UpstreamKind::RateLimited,
        "DEADLINE_EXCEEDED" => UpstreamKind::Timeout,
        "INVALID_ARGUMENT" if message.contains("token") && message.contains("exceeds") => {
            UpstreamKind::ContextTooLong
        }
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => UpstreamKind::BadRequest,
        _ if status == 0 => UpstreamKind::Failed,
        _ => kind_for_status(status),
    }
}

impl Wire for Gemini {
    fn headers(&self, key: Option<&str>) -> Vec<(&'static str, String)> {
        key.map(|k| vec![("x-goog-api-key", k.to_string())]).unwrap_or_default()
    }

    fn chat_request(&self, model: &str, messages: &[ChatMessage], params: &GenerateParams) -> WireRequest {
        let (system, contents) = super::alternating(messages, "model");
        let contents: Vec<Value> =
            contents.iter().map(|(r, t)| json!({"role": r, "parts": [{"text": t}]})).collect();
        let mut config = json!({
            "temperature": params.temperature,
            "maxOutputTokens": params.max_tokens,
            "seed": params.seed as i64 & 0x7fff_ffff,
        });
        if let Some(p) = params.top_p {
            config["topP"] = json!(p);
        }
        if let Some(k) = params.top_k {
            config["topK"] = json!(k);
        }
        if !params.stop.is_empty() {
            config["stopSequences"] = json!(params.stop);
        }
        let mut body = json!({"contents": contents, "generationConfig": config});
        if let Some(system) = system {
            body["systemInstruction"] = json!({"parts": [{"text": system}]});
        }
        let model = model.strip_prefix("models/").unwrap_or(model);
        WireRequest { path: format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"), body }
    }

    fn on_event(
        &self,
        provider: &str,
        event: &SseEvent,
        progress: &mut Progress,
    ) -> Result<String, ModelError> {
        let chunk = super::event_json(provider, event)?;
        if chunk.get("error").is_some() {
            return Err(upstream(kind_of(0, &chunk), provider, &super::error_message(&chunk)));
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            progress.usage.prompt_tokens = count(usage, "promptTokenCount");
            progress.usage.cached_prompt_tokens = count(usage, "cachedContentTokenCount");
            progress.usage.completion_tokens = count(usage, "candidatesTokenCount");
        }
        if let Some(reason) = chunk.pointer("/promptFeedback/blockReason").and_then(Value::as_str) {
            return Err(upstream(
                UpstreamKind::BadRequest,
                provider,
                &format!("the prompt was blocked: {reason}"),
            ));
        }
        let Some(candidate) = chunk.pointer("/candidates/0") else { return Ok(String::new()) };
        if let Some(reason) = candidate["finishReason"].as_str() {
            progress.finish =
                Some(if reason == "MAX_TOKENS" { FinishReason::Length } else { FinishReason::Stop });
        }
        let text = candidate
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| parts.iter().filter_map(|p| p["text"].as_str()).collect::<String>())
            .unwrap_or_default();
        Ok(text)
    }

    fn error_kind(&self, status: u16, body: &Value) -> UpstreamKind {
        kind_of(status, body)
    }

    fn error_detail(&self, body: &Value) -> String {
        // Gemini often answers an error as a one-element array.
        let body = body.get(0).unwrap_or(body);
        super::error_message(body)
    }

    fn models_path(&self) -> String {
        "/v1beta/models?pageSize=1000".into()
    }

    fn parse_models(&self, body: &Value) -> Vec<String> {
        let Some(models) = body["models"].as_array() else { return Vec::new() };
        models
            .iter()
            .filter(|m| {
                m["supportedGenerationMethods"]
                    .as_array()
                    .is_none_or(|methods| methods.iter().any(|x| x == "generateContent"))
            })
            .filter_map(|m| m["name"].as_str())
            .map(|n| n.strip_prefix("models/").unwrap_or(n).to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_use_geminis_roles_and_fields() {
        let msgs = [
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "hi"),
            ChatMessage::new("assistant", "hello"),
            ChatMessage::new("user", "bye"),
        ];
        let r = Gemini.chat_request(
            "models/gemini-x",
            &msgs,
            &GenerateParams { max_tokens: 7, ..Default::default() },
        );
        assert_eq!(r.path, "/v1beta/models/gemini-x:streamGenerateContent?alt=sse");
        assert_eq!(r.body["contents"][1], json!({"role": "model", "parts": [{"text": "hello"}]}));
        assert_eq!(r.body["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(r.body["generationConfig"]["maxOutputTokens"], 7);
    }

    #[test]
    fn a_stream_gives_text_finish_and_usage() {
        let chunks = [
            r#"{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":5,"totalTokenCount":5}}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"MAX_TOKENS","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":2,"totalTokenCount":7}}"#,
        ];
        let mut p = Progress::default();
        let mut text = String::new();
        for data in chunks {
            let e = SseEvent { event: String::new(), data: data.into() };
            text.push_str(&Gemini.on_event("gemini", &e, &mut p).unwrap());
        }
        assert_eq!(text, "Hello");
        assert_eq!(p.finish, Some(FinishReason::Length));
        assert_eq!((p.usage.prompt_tokens, p.usage.completion_tokens), (5, 2));
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let bad_key = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT", "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}});
        assert_eq!(Gemini.error_kind(400, &bad_key), UpstreamKind::BadKey);
        let e = |s: &str, m: &str| json!({"error": {"code": 0, "message": m, "status": s}});
        assert_eq!(
            Gemini.error_kind(404, &e("NOT_FOUND", "models/x is not found")),
            UpstreamKind::ModelNotFound
        );
        assert_eq!(Gemini.error_kind(429, &e("RESOURCE_EXHAUSTED", "quota")), UpstreamKind::RateLimited);
        let long = e(
            "INVALID_ARGUMENT",
            "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
        );
        assert_eq!(Gemini.error_kind(400, &long), UpstreamKind::ContextTooLong);
        assert_eq!(Gemini.error_detail(&json!([{"error": {"message": "x"}}])), "x");
        let models = json!({"models": [
            {"name": "models/gemini-2.0-flash", "supportedGenerationMethods": ["generateContent", "countTokens"]},
            {"name": "models/text-embedding-004", "supportedGenerationMethods": ["embedContent"]},
        ]});
        assert_eq!(Gemini.parse_models(&models), vec!["gemini-2.0-flash"]);
    }
}
