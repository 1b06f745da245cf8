//! Remote providers as admins configure them: a name, a wire format, a base URL, an API key
//! and the upstream models Ayush offers from it (each as `provider/model`): models that chat,
//! that speak, and that draw images, each where the vendor's API does so. The database holds
//! the key only sealed under `secrets/provider-keys.key`; no answer, log line or audit event
//! carries it. A URL is checked against the egress policy when it is saved, and again by the
//! connector at every connect.

use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult};
use crate::sealed::SealingKey;
use crate::store::schema::providers;
use crate::store::{Conn, columns};
use ayush_models::provider::{Kind, Purpose, check_base_url, origin_of};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The file, in the secrets directory, whose key seals provider API keys.
pub const KEY_FILE: &str = "provider-keys.key";
pub const DEFAULT_TIMEOUT_SECS: i64 = 120;
const MAX_MODELS: usize = 200;

/// A provider as the API shows it: never the key, only whether there is one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Provider {
    pub name: String,
    pub kind: String,
    pub base_url: String,
    pub has_api_key: bool,
    /// Models that chat.
    pub models: Vec<String>,
    /// Models that speak text (`/v1/audio/speech`).
    pub speech_models: Vec<String>,
    /// Models that draw images (`/v1/images/generations`).
    pub image_models: Vec<String>,
    pub timeout_secs: i64,
    pub created_by: String,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = providers)]
struct Row {
    name: String,
    kind: String,
    base_url: String,
    api_key_sealed: Option<String>,
    models: String,
    timeout_secs: i64,
    created_by: String,
    created_at: i64,
    updated_at: i64,
    speech_models: String,
    image_models: String,
}

impl Row {
    fn public(&self) -> Provider {
        Provider {
            name: self.name.clone(),
            kind: self.kind.clone(),
            base_url: self.base_url.clone(),
            has_api_key: self.api_key_sealed.is_some(),
            models: serde_json::from_str(&self.models).unwrap_or_default(),
            speech_models: serde_json::from_str(&self.speech_models).unwrap_or_default(),
            image_models: serde_json::from_str(&self.image_models).unwrap_or_default(),
            timeout_secs: self.timeout_secs,
            created_by: self.created_by.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl Provider {
    /// Its models, list by list.
    pub fn by_purpose(&self) -> [(Purpose, &[String]); 3] {
        [
            (Purpose::Chat, &self.models),
            (Purpose::Speech, &self.speech_models),
            (Purpose::Image, &self.image_models),
        ]
    }

    /// What the provider's model `model` is for, if it offers one by that id.
    pub fn purpose_of(&self, model: &str) -> Option<Purpose> {
        self.by_purpose().into_iter().find(|(_, list)| list.iter().any(|m| m == model)).map(|(p, _)| p)
    }
}

/// A provider with its key opened, for the connector.
pub struct Unsealed {
    pub provider: Provider,
    pub api_key: Option<String>,
}

/// What an admin sends to add a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProvider {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub speech_models: Vec<String>,
    #[serde(default)]
    pub image_models: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<i64>,
}

/// What an admin sends to change one; absent fields stay as they are. `api_key: ""` removes
/// the key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub speech_models: Option<Vec<String>>,
    #[serde(default)]
    pub image_models: Option<Vec<String>>,
    #[serde(default)]
    pub timeout_secs: Option<i64>,
}

/// The columns a change sets, in one statement; `None` leaves a column as it is, and
/// `Some(None)` clears the key.
#[derive(AsChangeset)]
#[diesel(table_name = providers)]
struct Update {
    base_url: Option<String>,
    models: Option<String>,
    speech_models: Option<String>,
    image_models: Option<String>,
    timeout_secs: Option<i64>,
    api_key_sealed: Option<Option<String>>,
    updated_at: i64,
}

fn aad(name: &str) -> Vec<u8> {
    format!("ayush-provider-key:{name}").into_bytes()
}

pub fn validate_name(name: &str) -> AppResult<()> {
    ayush_models::validate_name(name).map_err(|_| {
        AppError::validation(format!(
            "{name:?} is not a usable provider name: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    })
}

/// Checks a list of `purpose` models for a provider of `kind`.
fn validate_models(kind: Kind, purpose: Purpose, models: &[String]) -> AppResult<()> {
    if !models.is_empty() && !kind.offers(purpose) {
        let offered: Vec<&str> = [Purpose::Chat, Purpose::Speech, Purpose::Image]
            .into_iter()
            .filter(|p| kind.offers(*p))
            .map(Purpose::as_str)
            .collect();
        return Err(AppError::validation(format!(
            "a provider of kind {} has no {} models; it offers {} models",
            kind.as_str(),
            purpose.as_str(),
            offered.join(" and ")
        )));
    }
    if models.len() > MAX_MODELS {
        return Err(AppError::validation(format!("a provider offers at most {MAX_MODELS} models")));
    }
    for m in models {
        let ok = !m.is_empty()
            && m.len() <= 128
            && !m.starts_with('/')
            && m.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
        if !ok {
            return Err(AppError::validation(format!(
                "{m:?} is not a usable model id: 1 to 128 printable characters without spaces, quotes or backslashes"
            )));
        }
    }
    Ok(())
}

/// A model id names one thing a provider does: `provider/model` must find one model.
fn check_disjoint(chat: &[String], speech: &[String], image: &[String]) -> AppResult<()> {
    let mut seen = std::collections::HashSet::new();
    for m in chat.iter().chain(speech).chain(image) {
        if !seen.insert(m) {
            return Err(AppError::validation(format!(
                "{m:?} is listed twice; a model is a chat, a speech or an image model, once"
            )));
        }
    }
    Ok(())
}

fn validate_timeout(secs: i64) -> AppResult<()> {
    if !(1..=3600).contains(&secs) {
        return Err(AppError::validation("timeout_secs must be between 1 and 3600"));
    }
    Ok(())
}

fn validate_key(key: &str) -> AppResult<()> {
    if key.len() > 4096 || key.chars().any(|c| c.is_control() || c == ' ') {
        return Err(AppError::validation(
            "the API key must be at most 4096 characters, without spaces or control characters",
        ));
    }
    Ok(())
}

/// Checks a URL's form and, before anything is stored, the egress policy.
fn check_url(egress: &crate::egress::Egress, name: &str, url: &str) -> AppResult<()> {
    check_base_url(url).map_err(AppError::validation)?;
    egress.permits_url(&format!("provider {name}"), url).map_err(AppError::validation)
}

fn row(conn: &mut Conn, name: &str) -> AppResult<Row> {
    conn.first::<_, Row>(providers::table.filter(providers::name.eq(name)).select(columns::<Row>()))
        .optional()?
        .ok_or_else(|| AppError::not_found(format!("there is no provider named {name:?}")))
}

pub fn list(conn: &mut Conn) -> AppResult<Vec<Provider>> {
    let rows: Vec<Row> = conn.load(providers::table.select(columns::<Row>()).order(providers::name.asc()))?;
    Ok(rows.iter().map(Row::public).collect())
}

pub fn get(conn: &mut Conn, name: &str) -> AppResult<Provider> {
    Ok(row(conn, name)?.public())
}

/// The provider with its key, for connecting.
pub fn unsealed(conn: &mut Conn, key: &SealingKey, name: &str) -> AppResult<Unsealed> {
    let r = row(conn, name)?;
    let api_key = match &r.api_key_sealed {
        Some(sealed) => {
            let plain = key.open(sealed, &aad(&r.name)).map_err(|e| {
                AppError::internal(format!("the API key of provider {name} cannot be opened: {e}"))
            })?;
            Some(String::from_utf8(plain).map_err(AppError::internal)?)
        }
        None => None,
    };
    Ok(Unsealed { provider: r.public(), api_key })
}

pub fn create(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    key: &SealingKey,
    egress: &crate::egress::Egress,
    new: NewProvider,
) -> AppResult<Provider> {
    validate_name(&new.name)?;
    let kind = Kind::parse(&new.kind).ok_or_else(|| {
        let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
        AppError::validation(format!("{:?} is not a provider kind: {}", new.kind, kinds.join(", ")))
    })?;
    let base_url = new.base_url.clone().unwrap_or_else(|| kind.default_base_url().to_string());
    check_url(egress, &new.name, &base_url)?;
    validate_models(kind, Purpose::Chat, &new.models)?;
    validate_models(kind, Purpose::Speech, &new.speech_models)?;
    validate_models(kind, Purpose::Image, &new.image_models)?;
    check_disjoint(&new.models, &new.speech_models, &new.image_models)?;
    let timeout = new.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS);
    validate_timeout(timeout)?;
    let sealed = match new.api_key.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => {
            validate_key(k)?;
            Some(key.seal(k.as_bytes(), &aad(&new.name)).map_err(AppError::internal)?)
        }
        None => None,
    };
    let models = serde_json::to_string(&new.models).map_err(AppError::internal)?;
    let speech_models = serde_json::to_string(&new.speech_models).map_err(AppError::internal)?;
    let image_models = serde_json::to_string(&new.image_models).map_err(AppError::internal)?;
    conn.transaction(|conn| {
        let exists: i64 = conn.get_result(providers::table.filter(providers::name.eq(&new.name)).count())?;
        if exists > 0 {
            return Err(AppError::conflict(format!("a provider named {:?} exists", new.name)));
        }
        conn.execute(diesel::insert_into(providers::table).values((
            providers::name.eq(&new.name),
            providers::kind.eq(kind.as_str()),
            providers::base_url.eq(&base_url),
            providers::api_key_sealed.eq(&sealed),
            providers::models.eq(&models),
            providers::speech_models.eq(&speech_models),
            providers::image_models.eq(&image_models),
            providers::timeout_secs.eq(timeout),
            providers::created_by.eq(&actor.name),
            providers::created_at.eq(now),
            providers::updated_at.eq(now),
        )))?;
        let details = json!({
            "kind": kind.as_str(), "base_url": base_url, "models": new.models,
            "speech_models": new.speech_models, "image_models": new.image_models,
            "timeout_secs": timeout, "api_key": if sealed.is_some() { "set" } else { "none" },
        });
        audit::record(
            conn,
            now,
            &Event::new(actor, "provider.create", Outcome::Success)
                .target("provider", &new.name)
                .details(details),
        )?;
        get(conn, &new.name)
    })
}

pub fn change(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    key: &SealingKey,
    egress: &crate::egress::Egress,
    name: &str,
    change: Change,
) -> AppResult<Provider> {
    if let Some(url) = &change.base_url {
        check_url(egress, name, url)?;
    }
    if let Some(t) = change.timeout_secs {
        validate_timeout(t)?;
    }
    let sealed = match change.api_key.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(k) => {
            validate_key(k)?;
            Some(Some(key.seal(k.as_bytes(), &aad(name)).map_err(AppError::internal)?))
        }
    };
    conn.transaction(|conn| {
        let before = row(conn, name)?;
        let kind = Kind::parse(&before.kind).ok_or_else(|| {
            AppError::internal(format!("provider {name} has an unknown kind {:?}", before.kind))
        })?;
        for (purpose, models) in [
            (Purpose::Chat, &change.models),
            (Purpose::Speech, &change.speech_models),
            (Purpose::Image, &change.image_models),
        ] {
            if let Some(models) = models {
                validate_models(kind, purpose, models)?;
            }
        }
        let now_listed = before.public();
        check_disjoint(
            change.models.as_ref().unwrap_or(&now_listed.models),
            change.speech_models.as_ref().unwrap_or(&now_listed.speech_models),
            change.image_models.as_ref().unwrap_or(&now_listed.image_models),
        )?;
        // The key was given for one server: sent to another address, it would hand it over. A
        // new address keeps no key unless one comes with it.
        let moved =
            change.base_url.as_deref().is_some_and(|url| origin_of(url) != origin_of(&before.base_url));
        let cleared = moved && sealed.is_none() && before.api_key_sealed.is_some();
        let sealed = if cleared { Some(None) } else { sealed.clone() };
        let list = |m: &Option<Vec<String>>| {
            m.as_ref().map(serde_json::to_string).transpose().map_err(AppError::internal)
        };
        let update = Update {
            base_url: change.base_url.clone(),
            models: list(&change.models)?,
            speech_models: list(&change.speech_models)?,
            image_models: list(&change.image_models)?,
            timeout_secs: change.timeout_secs,
            api_key_sealed: sealed.clone(),
            updated_at: now,
        };
        conn.execute(diesel::update(providers::table.filter(providers::name.eq(name))).set(&update))?;
        let mut details = serde_json::Map::new();
        if let Some(url) = &change.base_url {
            details.insert("base_url".into(), json!({"from": before.base_url, "to": url}));
        }
        for (field, models) in [
            ("models", &change.models),
            ("speech_models", &change.speech_models),
            ("image_models", &change.image_models),
        ] {
            if let Some(models) = models {
                details.insert(field.into(), json!(models));
            }
        }
        if let Some(t) = change.timeout_secs {
            details.insert("timeout_secs".into(), json!(t));
        }
        if let Some(s) = &sealed {
            let what = match (s, cleared) {
                (Some(_), _) => "replaced",
                (None, true) => "cleared: the address moved to another server",
                (None, false) => "removed",
            };
            details.insert("api_key".into(), json!(what));
        }
        audit::record(
            conn,
            now,
            &Event::new(actor, "provider.update", Outcome::Success)
                .target("provider", name)
                .details(serde_json::Value::Object(details)),
        )?;
        get(conn, name)
    })
}

pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, name: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let before = row(conn, name)?;
        conn.execute(diesel::delete(providers::table.filter(providers::name.eq(name))))?;
        audit::record(
            conn,
            now,
            &Event::new(actor, "provider.remove", Outcome::Success)
                .target("provider", name)
                .details(json!({"kind": before.kind, "base_url": before.base_url})),
        )
    })
}
