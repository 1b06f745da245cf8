//! Remote mode: the server's JSON API with an admin API token.

use crate::backend::Backend;
use ayush_server::audit::query::{Filter, Format};
use ayush_server::url::encode_component as seg;
use serde_json::{Value, json};
use std::io::Write;
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
            ("PUT", Body::Json(v)) => self.agent.put(&url).header("Authorization", &auth).send_json(v),
            ("PUT", Body::None) => self.agent.put(&url).header("Authorization", &auth).send_empty(),
            _ => return Err(format!("unsupported call {method} {path}")),
        };
        self.reply(result)
    }

    fn reply(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, String> {
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

/// How long an upload may make no progress before it is given up.
const UPLOAD_STALL_SECS: u64 = 60;

/// Counts what is read, for the progress line.
struct Counting<R> {
    inner: R,
    done: u64,
    total: u64,
    bar: crate::local::Progress,
    /// `done`, for whoever watches the upload for a stall.
    shared: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        self.shared.store(self.done, std::sync::atomic::Ordering::Relaxed);
        self.bar.show(self.done, self.total);
        Ok(n)
    }
}

impl Backend for Remote {
    fn import_model(&self, file: &std::path::Path, name: Option<&str>) -> Result<Value, String> {
        if file.is_dir() {
            return Err(format!(
                "{} is a folder (an embedding or Whisper model): import it on the server with `ayushctl --local models import`",
                file.display()
            ));
        }
        let opened = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let total = opened.metadata().map(|m| m.len()).unwrap_or(0);
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
        let name = name.unwrap_or(stem);
        // Refuse here what the server would refuse, before sending hundreds of megabytes: a
        // file that is not a usable model, a name that is taken, a token that is not an admin's.
        ayush_models::inspect(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if listed(&self.list_models()?, name) {
            return Err(format!("a model named {name:?} exists; remove it first or pick --name"));
        }
        let source = file.file_name().and_then(|s| s.to_str()).unwrap_or_default();
        let url = format!("{}/api/admin/models?name={}&source={}", self.base, seg(name), seg(source));
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let body = Counting {
            inner: opened,
            done: 0,
            total,
            bar: crate::local::Progress::new("uploading"),
            shared: sent.clone(),
        };
        // A large file over a slow link may take long: only connecting is bounded here, and a
        // stall below. (ureq's per-write timeout does not interrupt a send blocked on a full
        // socket buffer.)
        let request = self
            .agent
            .post(&url)
            .config()
            .timeout_global(None)
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream");
        let (done, result) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut body = body;
            let _ = done.send(request.send(ureq::SendBody::from_reader(&mut body)));
        });
        // A server that answered early (a full disk, an expired key) stops reading, and the
        // upload would wait forever for room to write: give up when nothing moves for a while.
        let mut last = 0;
        loop {
            match result.recv_timeout(std::time::Duration::from_secs(UPLOAD_STALL_SECS)) {
                Ok(result) => return self.reply(result),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    let now = sent.load(std::sync::atomic::Ordering::Relaxed);
                    // Once all is sent, the server checks the file: that may take long.
                    if now == last && now < total {
                        return Err(format!(
                            "{} stopped taking the upload for {UPLOAD_STALL_SECS} s; it may have refused it (a full disk, an expired key): its log says why",
                            self.base
                        ));
                    }
                    last = now;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the upload stopped unexpectedly".into());
                }
            }
        }
    }

    fn verify_model(&self, name: &str) -> Result<bool, String> {
        let v =
            self.call("POST", &format!("/api/admin/models/{}/verify", seg(name)), Body::Json(&json!({})))?;
        Ok(v["ok"].as_bool().unwrap_or(false))
    }

    fn remove_model(&self, name: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/models/{}", seg(name)), Body::None).map(drop)
    }

    fn set_default_model(&self, name: &str) -> Result<(), String> {
        self.call("PUT", &format!("/api/admin/models/{}/default", seg(name)), Body::None).map(drop)
    }

    fn create_user(&self, body: Value) -> Result<Value, String> {
        self.call("POST", "/api/admin/users", Body::Json(&body))
    }

    fn link_user(&self, name: &str, provider: &str, subject: &str) -> Result<Value, String> {
        let body = json!({"provider": provider, "subject": subject});
        self.call("POST", &format!("/api/admin/users/{}/link", seg(name)), Body::Json(&body))
    }

    fn deprovision_user(&self, name: &str) -> Result<Value, String> {
        self.call("POST", &format!("/api/admin/users/{}/deprovision", seg(name)), Body::Json(&json!({})))
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

    fn audit_verify(&self, from_checkpoint: Option<Value>) -> Result<Value, String> {
        self.call("POST", "/api/audit/verify", Body::Json(&json!({"from_checkpoint": from_checkpoint})))
    }

    fn audit_export(&self, filter: &Filter, format: Format, out: &mut dyn Write) -> Result<(), String> {
        let format = match format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        };
        let url = format!("{}/api/audit/export?format={format}{}", self.base, filter_query(filter)?);
        let resp = self
            .agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        if !resp.status().is_success() {
            return self.reply(Ok(resp)).map(drop);
        }
        let mut body = resp.into_body();
        std::io::copy(&mut body.as_reader(), out).map_err(|e| format!("receiving the export: {e}"))?;
        out.flush().map_err(|e| format!("writing the export: {e}"))
    }

    fn create_key(&self, user: &str, name: &str, expires_days: Option<u32>) -> Result<Value, String> {
        let body = json!({"user": user, "name": name, "expires_days": expires_days});
        self.call("POST", "/api/admin/keys", Body::Json(&body))
    }

    fn list_keys(&self, user: Option<&str>) -> Result<Value, String> {
        let query = user.map(|u| format!("?user={}", seg(u))).unwrap_or_default();
        self.call("GET", &format!("/api/admin/keys{query}"), Body::None)
    }

    fn revoke_key(&self, id: i64) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/keys/{id}"), Body::None).map(drop)
    }

    fn list_providers(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/providers", Body::None)
    }

    fn add_provider(&self, body: Value) -> Result<Value, String> {
        self.call("POST", "/api/admin/providers", Body::Json(&body))
    }

    fn change_provider(&self, name: &str, body: Value) -> Result<Value, String> {
        self.call("PATCH", &format!("/api/admin/providers/{}", seg(name)), Body::Json(&body))
    }

    fn remove_provider(&self, name: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/providers/{}", seg(name)), Body::None).map(drop)
    }

    fn list_collections(&self) -> Result<Value, String> {
        self.call("GET", "/api/collections", Body::None)
    }

    fn create_collection(&self, body: Value) -> Result<Value, String> {
        self.call("POST", "/api/collections", Body::Json(&body))
    }

    fn remove_collection(&self, name: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/collections/{}", seg(name)), Body::None).map(drop)
    }

    fn grant_collection(&self, name: &str, group: &str) -> Result<(), String> {
        let path = format!("/api/collections/{}/readers/{}", seg(name), seg(group));
        self.call("PUT", &path, Body::None).map(drop)
    }

    fn revoke_collection(&self, name: &str, group: &str) -> Result<(), String> {
        let path = format!("/api/collections/{}/readers/{}", seg(name), seg(group));
        self.call("DELETE", &path, Body::None).map(drop)
    }

    fn list_documents(&self, collection: &str) -> Result<Value, String> {
        self.call("GET", &format!("/api/collections/{}/documents", seg(collection)), Body::None)
    }

    fn add_document(&self, collection: &str, source: &str, bytes: Vec<u8>) -> Result<Value, String> {
        let url =
            format!("{}/api/collections/{}/documents?source={}", self.base, seg(collection), seg(source));
        let result = self
            .agent
            .post(&url)
            .config()
            .timeout_global(Some(std::time::Duration::from_secs(600)))
            .build()
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream")
            .send(&bytes[..]);
        self.reply(result)
    }

    fn list_presets(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/presets", Body::None)
    }

    fn create_preset(&self, body: Value) -> Result<Value, String> {
        self.call("POST", "/api/admin/presets", Body::Json(&body))
    }

    fn change_preset(&self, name: &str, body: Value) -> Result<Value, String> {
        self.call("PATCH", &format!("/api/admin/presets/{}", seg(name)), Body::Json(&body))
    }

    fn remove_preset(&self, name: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/presets/{}", seg(name)), Body::None).map(drop)
    }

    fn usage_report(&self, from: Option<&str>, to: Option<&str>, by: &str) -> Result<Value, String> {
        let mut query = format!("?by={}", seg(by));
        for (name, value) in [("from", from), ("to", to)] {
            if let Some(v) = value {
                query.push_str(&format!("&{name}={}", seg(v)));
            }
        }
        self.call("GET", &format!("/api/admin/usage{query}"), Body::None)
    }

    fn set_price(&self, body: Value) -> Result<Value, String> {
        self.call("PUT", "/api/admin/prices", Body::Json(&body))
    }

    fn list_prices(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/prices", Body::None)
    }

    fn remove_price(&self, provider: &str, model: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/prices/{}/{}", seg(provider), seg(model)), Body::None)
            .map(drop)
    }

    fn show_theme(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/theme", Body::None)
    }

    fn set_theme(&self, body: Value) -> Result<Value, String> {
        self.call("PUT", "/api/admin/theme", Body::Json(&body))
    }

    fn set_quota(&self, body: Value) -> Result<Value, String> {
        self.call("PUT", "/api/admin/quotas", Body::Json(&body))
    }

    fn list_quotas(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/quotas", Body::None)
    }

    fn remove_quota(&self, user: Option<&str>, group: Option<&str>, pool: &str) -> Result<(), String> {
        let mut query = format!("?pool={}", seg(pool));
        for (name, value) in [("user", user), ("group", group)] {
            if let Some(v) = value {
                query.push_str(&format!("&{name}={}", seg(v)));
            }
        }
        self.call("DELETE", &format!("/api/admin/quotas{query}"), Body::None).map(drop)
    }

    fn index_status(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/index", Body::None)
    }

    fn rebuild_index(&self) -> Result<Value, String> {
        self.call("POST", "/api/admin/index/rebuild", Body::Json(&json!({})))
    }

    fn backup_create(
        &self,
        output: &std::path::Path,
        passphrase: Option<String>,
        with_models: bool,
    ) -> Result<Value, String> {
        if with_models {
            return Err(
                "model files are copied only with --local (on the server, or its shared volume)".into()
            );
        }
        if output.exists() {
            return Err(format!("{} exists already: choose another file name", output.display()));
        }
        let resp = self
            .agent
            .post(&format!("{}/api/admin/backup", self.base))
            .header("Authorization", &format!("Bearer {}", self.token))
            .send_json(json!({"passphrase": passphrase}))
            .map_err(|e| format!("cannot reach {}: {e}", self.base))?;
        if !resp.status().is_success() {
            return self.reply(Ok(resp));
        }
        let mut partial = output.as_os_str().to_owned();
        partial.push(".partial");
        let partial = std::path::PathBuf::from(partial);
        let received = (|| {
            let mut file =
                std::fs::File::create(&partial).map_err(|e| format!("{}: {e}", partial.display()))?;
            std::io::copy(&mut resp.into_body().as_reader(), &mut file)
                .map_err(|e| format!("receiving the backup: {e}"))?;
            file.sync_all().map_err(|e| format!("{}: {e}", partial.display()))?;
            // What arrived is checked as a restore would check it before it takes the name.
            let reader = ayush_server::backup::archive::Reader::open(&partial)?;
            std::fs::rename(&partial, output).map_err(|e| format!("{}: {e}", output.display()))?;
            Ok::<_, String>(reader.manifest)
        })();
        match received {
            Ok(manifest) => Ok(crate::local::summary(output, &manifest)),
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                Err(e)
            }
        }
    }

    fn test_provider(&self, name: &str) -> Result<Value, String> {
        self.call("GET", &format!("/api/admin/providers/{}/upstream-models", seg(name)), Body::None)
    }

    fn directory_sync(&self, dry_run: bool) -> Result<Value, String> {
        self.call("POST", "/api/admin/directory/sync", Body::Json(&json!({"dry_run": dry_run})))
    }

    fn list_mappings(&self) -> Result<Value, String> {
        self.call("GET", "/api/admin/mappings", Body::None)
    }

    fn add_mapping(
        &self,
        directory_group: &str,
        role: Option<&str>,
        group: Option<&str>,
    ) -> Result<Value, String> {
        let body = json!({"directory_group": directory_group, "role": role, "group": group});
        self.call("POST", "/api/admin/mappings", Body::Json(&body))
    }

    fn remove_mapping(&self, id: i64) -> Result<(), String> {
        self.call("DELETE", &format!("/api/admin/mappings/{id}"), Body::None).map(drop)
    }

    fn audit_holds(&self) -> Result<Value, String> {
        self.call("GET", "/api/audit/holds", Body::None)
    }

    fn audit_hold(&self, user: &str, reason: &str) -> Result<Value, String> {
        self.call("PUT", &format!("/api/audit/holds/{}", seg(user)), Body::Json(&json!({"reason": reason})))
    }

    fn audit_release(&self, user: &str) -> Result<(), String> {
        self.call("DELETE", &format!("/api/audit/holds/{}", seg(user)), Body::None).map(drop)
    }

    fn audit_events(&self, filter: &Filter, after: Option<i64>, limit: i64) -> Result<Vec<Value>, String> {
        let after = after.map(|a| format!("&after={a}")).unwrap_or_default();
        let path = format!("/api/audit/events?limit={limit}{after}{}", filter_query(filter)?);
        let reply = self.call("GET", &path, Body::None)?;
        Ok(reply["events"].as_array().cloned().unwrap_or_default())
    }
}

/// The filter as `&key=value` pairs for the audit endpoints.
fn filter_query(filter: &Filter) -> Result<String, String> {
    let value = serde_json::to_value(filter).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for (key, v) in value.as_object().into_iter().flatten() {
        if let Some(v) = v.as_str() {
            out.push_str(&format!("&{key}={}", seg(v)));
        }
    }
    Ok(out)
}

fn listed(listing: &Value, model: &str) -> bool {
    listing.as_array().into_iter().flatten().any(|m| m["name"] == model)
}

/// Whether `model`'s entry in an admin listing names no group.
fn open_to_everyone(listing: &Value, model: &str) -> bool {
    listing
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["name"] == model && m["groups"].as_array().is_none_or(|g| g.is_empty()))
}
