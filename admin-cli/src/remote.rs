//! Remote mode: the server's JSON API with an admin API token.

use crate::backend::Backend;
use ayush_server::http::encode_component as seg;
use serde_json::{Value, json};
use ureq::Agent;

pub struct Remote {
    base: String,
    token: String,
    agent: Agent,
}

enum Body<'a> {
    None,
    Json(&'a Value),
}

impl Remote {
    pub fn new(url: &str, token: String) -> Result<Remote, String> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("--url {url:?} must start with http:// or https://"));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(60)))
            .build()
            .into();
        Ok(Remote { base: url.trim_end_matches('/').to_string(), token, agent })
    }

    fn call(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value, String> {
        let url = format!("{}{path}", self.base);
        let auth = format!("Bearer {}", self.token);
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", &auth).call(),
            ("POST", Body::Json(v)) => self.agent.post(&url).header("Authorization", &auth).send_json(v),
            ("PATCH", Body::Json(v)) => self.agent.patch(&url).header("Authorization", &auth).send_json(v),
            ("PUT", _) => self.agent.put(&url).header("Authorization", &auth).send_empty(),
            _ => return Err(format!("unsupported call {method} {path}")),
        };
        let mut resp = result.map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        let status = resp.status();
        let text = resp.body_mut().read_to_string().map_err(|e| format!("reading the reply: {e}"))?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let code = value.pointer("/error/code").and_then(Value::as_str).unwrap_or("");
        Err(if code.is_empty() { message } else { format!("{message} ({code})") })
    }
}

impl Backend for Remote {
    fn create_user(
        &self,
        name: &str,
        role: &str,
        display_name: &str,
        password: Option<String>,
    ) -> Result<Value, String> {
        let body =
            json!({"username": name, "role": role, "display_name": display_name, "password": password});
        self.call("POST", "/api/admin/users", Body::Json(&body))
    }

    fn list_users(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/users", Body::None)
    }

    fn show_user(&self, name: &str) -> Result<Value, String> {
        self.call("GET", &format!("/api/admin/users/{}", seg(name)), Body::None)
    }

    fn set_disabled(&self, name: &str, disabled: bool) -> Result<Value, String> {
        self.call(
            "PATCH",
            &format!("/api/admin/users/{}", seg(name)),
            Body::Json(&json!({"disabled": disabled})),
        )
    }

    fn set_role(&self, name: &str, role: &str) -> Result<Value, String> {
        self.call("PATCH", &format!("/api/admin/users/{}", seg(name)), Body::Json(&json!({"role": role})))
    }

    fn reset_password(&self, name: &str, password: String) -> Result<(), String> {
        let body = json!({"password": password});
        self.call("POST", &format!("/api/admin/users/{}/password", seg(name)), Body::Json(&body)).map(drop)
    }

    fn create_group(&self, name: &str, description: &str) -> Result<Value, String> {
        self.call("POST", "/api/admin/groups", Body::Json(&json!({"name": name, "description": description})))
    }

    fn list_models(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/models", Body::None)
    }

    fn allow_model(&self, model: &str, group: &str) -> Result<(), String> {
        self.call("PUT", &format!("/api/admin/models/{}/groups/{}", seg(model), seg(group)), Body::None)
            .map(drop)
    }

    fn disallow_model(&self, model: &str, group: &str) -> Result<bool, String> {
        self.call("DELETE", &format!("/api/admin/models/{}/groups/{}", seg(model), seg(group)), Body::None)?;
        let all = self.list_models()?;
        Ok(open_to_everyone(&all, model))
    }

    fn list_groups(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/groups", Body::None)
    }

    fn show_group(&self, name: &str) -> Result<Value, String> {
        self.call("GET", &format!("/api/admin/groups/{}", seg(name)), Body::None)
    }

    fn delete_group(&self, name: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/groups/{}", seg(name)), Body::None).map(drop)
    }

    fn add_member(&self, group: &str, user: &str) -> Result<(), String> {
        self.call("PUT", &format!("/api/admin/groups/{}/members/{}", seg(group), seg(user)), Body::None)
            .map(drop)
    }

    fn remove_member(&self, group: &str, user: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/groups/{}/members/{}", seg(group), seg(user)), Body::None)
            .map(drop)
    }
}

/// Whether `model`'s entry in an admin listing names no group.
fn open_to_everyone(listing: &Value, model: &str) -> bool {
    listing
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["name"] == model && m["groups"].as_array().is_none_or(|g| g.is_empty()))
}
