//! OpenAI's Chat Completions wire format, which vLLM, TGI, llama.cpp server, Ollama, LM Studio
//! and Ayush itself also speak: `POST {base}/chat/completions` with `stream: true`, answered
//! by `data:` chunks and `data: [DONE]`; usage in a last chunk when `include_usage` is asked.

use super::{Progress, SseEvent, UpstreamKind, Wire, WireRequest, kind_for_status, upstream};
use crate::ModelError;
use crate::model::FinishReason;
use crate::sampling::GenerateParams;
use crate::template::ChatMessage;
use serde_json::{Value, json};

pub(crate) struct OpenAi;

fn count(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0) as usize
}

fn finish(reason: &str) -> FinishReason {
    match reason {
        "length" => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

fn kind_of(status: u16, body: &Value) -> UpstreamKind {
    let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or_default();
    let kind = body.pointer("/error/type").and_then(Value::as_str).unwrap_or_default();
    match (code, kind) {
        ("context_length_exceeded", _) => UpstreamKind::ContextTooLong,
        ("model_not_found", _) => UpstreamKind::ModelNotFound,
        ("invalid_api_key", _) | (_, "authentication_error") => UpstreamKind::BadKey,
        ("rate_limit_exceeded" | "insufficient_quota", _) | (_, "rate_limit_error") => {
            UpstreamKind::RateLimited
        }
        _ if status == 0 => UpstreamKind::Failed,
        _ => kind_for_status(status),
    }
}

impl Wire for OpenAi {
    fn headers(&self, key: Option<&str>) -> Vec<(&'static str, String)> {
        key.map(|k| vec![("authorization", format!("Bearer {k}"))]).unwrap_or_default()
    }

    fn chat_request(&self, model: &str, messages: &[ChatMessage], params: &GenerateParams) -> WireRequest {
        let messages: Vec<Value> =
            messages.iter().map(|m| json!({"role": m.role, "content": m.content})).collect();
        let mut body = json!({
            "model": model,
            "messages": messages,
            "stream": true,
            "stream_options": {"include_usage": true},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
        });
        if let Some(p) = params.top_p {
            body["top_p"] = json!(p);
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        WireRequest { path: "/chat/completions".into(), body }
    }

    fn on_event(
        &self,
        provider: &str,
        event: &SseEvent,
        progress: &mut Progress,
    ) -> Result<String, ModelError> {
        if event.data.trim() == "[DONE]" {
            progress.done = true;
            return Ok(String::new());
        }
        let chunk = super::event_json(provider, event)?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(upstream(kind_of(0, &chunk), provider, &self.error_detail(&chunk)));
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            progress.usage.prompt_tokens = count(usage, "/prompt_tokens");
            progress.usage.completion_tokens = count(usage, "/completion_tokens");
            progress.usage.cached_prompt_tokens = count(usage, "/prompt_tokens_details/cached_tokens");
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return Ok(String::new()) };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            progress.finish = Some(finish(reason));
        }
        Ok(choice.pointer("/delta/content").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    fn error_kind(&self, status: u16, body: &Value) -> UpstreamKind {
        kind_of(status, body)
    }

    fn error_detail(&self, body: &Value) -> String {
        // Ollama and some others answer `{"error": "text"}`.
        match body.get("error") {
            Some(Value::String(s)) => s.clone(),
            _ => super::error_message(body),
        }
    }

    fn models_path(&self) -> String {
        "/models".into()
    }

    fn parse_models(&self, body: &Value) -> Vec<String> {
        body["data"]
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(events: &[&str]) -> (Result<String, ModelError>, Progress) {
        let mut p = Progress::default();
        let mut text = String::new();
        for data in events {
            let e = SseEvent { event: String::new(), data: data.to_string() };
            match OpenAi.on_event("up", &e, &mut p) {
                Ok(t) => text.push_str(&t),
                Err(err) => return (Err(err), p),
            }
        }
        (Ok(text), p)
    }

    #[test]
    fn a_stream_gives_text_finish_and_usage() {
        let (text, p) = feed(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            "[DONE]",
        ]);
        assert_eq!(text.unwrap(), "Hello");
        assert_eq!(p.finish, Some(FinishReason::Length));
        assert_eq!(
            (p.usage.prompt_tokens, p.usage.completion_tokens, p.usage.cached_prompt_tokens),
            (9, 2, 4)
        );
        assert!(p.done);
    }

    #[test]
    fn errors_are_sorted_by_what_they_mean() {
        let (r, _) = feed(&[
            r#"{"error":{"message":"This model's maximum context length is 8 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
        ]);
        assert!(matches!(r, Err(ModelError::Upstream { kind: UpstreamKind::ContextTooLong, .. })));
        let key = json!({"error": {"message": "Incorrect API key", "type": "invalid_request_error", "code": "invalid_api_key"}});
        assert_eq!(OpenAi.error_kind(401, &key), UpstreamKind::BadKey);
        assert_eq!(
            OpenAi.error_kind(404, &json!({"error": "model 'x' not found"})),
            UpstreamKind::ModelNotFound
        );
        assert_eq!(OpenAi.error_detail(&json!({"error": "model 'x' not found"})), "model 'x' not found");
        assert_eq!(OpenAi.error_kind(429, &json!({})), UpstreamKind::RateLimited);
        assert_eq!(OpenAi.error_kind(500, &json!({})), UpstreamKind::Failed);
        assert!(feed(&["not json"]).0.is_err());
    }

    #[test]
    fn requests_carry_the_parameters() {
        let params = GenerateParams { stop: vec!["\n\n".into()], ..GenerateParams::default() };
        let r = OpenAi.chat_request("gpt-x", &[ChatMessage::new("user", "hi")], &params);
        assert_eq!(r.path, "/chat/completions");
        assert_eq!(r.body["messages"][0], json!({"role": "user", "content": "hi"}));
        assert_eq!(r.body["stop"], json!(["\n\n"]));
        assert_eq!(r.body["stream_options"]["include_usage"], json!(true));
        assert_eq!(OpenAi.headers(Some("k")), vec![("authorization", "Bearer k".to_string())]);
    }
}
