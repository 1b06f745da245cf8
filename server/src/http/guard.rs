//! The permission guard lives in the extractor's type: a handler that takes `Authed<AdminOnly>`
//! cannot run for anyone but an enabled admin, and cannot forget to check.

use crate::audit::{self, Actor, Event, Outcome};
use crate::auth::users::User;
use crate::auth::{Role, sessions, tokens};
use crate::error::{AppError, ErrorKind};
use crate::state::AppState;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use std::marker::PhantomData;

pub const SESSION_COOKIE: &str = "ayush_session";

pub trait Policy {
    fn allows(user: &User) -> bool;
}

/// Any signed-in, enabled user.
pub struct AnyUser;
/// Administrators.
pub struct AdminOnly;
/// Compliance officers (and nothing else by default).
pub struct AuditorOnly;
/// People who chat: users and admins. Auditors read the audit log and nothing else; service
/// accounts keep no chats or personal collections.
pub struct ChatUser;
/// Callers of the OpenAI-compatible API: people who chat, and service accounts.
pub struct ApiUser;

impl Policy for AnyUser {
    fn allows(_: &User) -> bool {
        true
    }
}
impl Policy for AdminOnly {
    fn allows(user: &User) -> bool {
        user.role == Role::Admin
    }
}
impl Policy for ChatUser {
    fn allows(user: &User) -> bool {
        matches!(user.role, Role::User | Role::Admin) && !user.is_service()
    }
}
impl Policy for ApiUser {
    fn allows(user: &User) -> bool {
        matches!(user.role, Role::User | Role::Admin)
    }
}
impl Policy for AuditorOnly {
    fn allows(user: &User) -> bool {
        user.role == Role::Auditor
    }
}

#[derive(Debug, Clone)]
pub enum Via {
    Session { token: String, csrf: String },
    ApiToken { id: i64, expires_at: Option<i64> },
}

pub struct Authed<P> {
    pub user: User,
    pub via: Via,
    pub ip: String,
    pub user_agent: Option<String>,
    _policy: PhantomData<P>,
}

impl<P> Authed<P> {
    pub fn actor(&self) -> Actor {
        let (method, api_key_id) = match self.via {
            Via::Session { .. } => ("session", None),
            Via::ApiToken { id, .. } => ("api_token", Some(id)),
        };
        Actor {
            user_id: Some(self.user.id),
            name: self.user.username.clone(),
            method: Some(method.into()),
            api_key_id,
            ip: Some(self.ip.clone()),
            user_agent: self.user_agent.clone(),
        }
    }

    /// Who is asking for a key, for the rules on keys.
    pub fn issuer(&self) -> tokens::Issuer {
        let (user_id, admin) = (self.user.id, self.user.role == Role::Admin);
        match self.via {
            Via::Session { .. } => tokens::Issuer::Session { user_id, admin },
            Via::ApiToken { expires_at, .. } => tokens::Issuer::Key { user_id, admin, expires_at },
        }
    }

    /// The CSRF token HTML forms must echo (sessions only).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::ApiToken { .. } => "",
        }
    }
}

/// The values of a request header, each occurrence in the order received.
pub fn header_values<'a>(req: &'a HttpRequest, name: &str) -> Vec<&'a str> {
    req.headers().get_all(name).filter_map(|v| v.to_str().ok()).collect()
}

/// The client's address: the socket peer, or, behind a trusted proxy, the right-most
/// `X-Forwarded-For` hop that is not one (see [`crate::proxies`]).
pub fn client_ip(req: &HttpRequest, proxies: &crate::proxies::TrustedProxies) -> String {
    match req.peer_addr() {
        Some(peer) => proxies.client(peer.ip(), &header_values(req, "x-forwarded-for")).to_string(),
        None => "unknown".into(),
    }
}

pub fn user_agent(req: &HttpRequest) -> Option<String> {
    req.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(|s| s.chars().take(512).collect())
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// Who a request comes from, found once per request by [`identify`] before any handler's
/// arguments are read: so a request without a live credential, or from the wrong role, is
/// refused as such before its body, query or path are even looked at.
#[derive(Clone)]
struct Identified(Result<(User, Via), AppError>);

/// A refusal for the role, to record once the handler has answered.
struct Denied(Actor, String, &'static str);

/// Paths that never need to know who asks (so an expired cookie on a stylesheet is not looked
/// up, nor recorded as a session ending).
fn anonymous_path(path: &str) -> bool {
    path.starts_with("/static/")
        || path.starts_with("/theme")
        || matches!(path, "/livez" | "/readyz" | "/metrics")
}

/// Middleware: resolves the request's API key or session (when it carries one) into the
/// request, for `Authed` to check synchronously; afterwards records a refusal for the role.
pub async fn identify(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let state = req.app_data::<web::Data<AppState>>().cloned();
    if let Some(state) = &state
        && !anonymous_path(req.path())
        && let Some(found) = resolve(state, req.request()).await
    {
        if let Ok((user, Via::Session { .. })) = &found
            && let Some(refusal) = crate::http::ui::notice::gate(state, req.request(), user.id).await
        {
            return Ok(req.into_response(refusal).map_into_right_body());
        }
        req.extensions_mut().insert(Identified(found));
    }
    let res = next.call(req).await?;
    let denied = res.request().extensions_mut().remove::<Denied>();
    if let (Some(Denied(actor, path, role)), Some(state)) = (denied, state) {
        let now = state.clock.now();
        let recorded = state
            .store
            .run(move |c| {
                let details = serde_json::json!({"request": path, "role": role});
                audit::record(c, now, &Event::new(&actor, "access.denied", Outcome::Denied).details(details))
            })
            .await;
        if let Err(e) = recorded {
            tracing::error!(error = %e, "cannot record a refused request");
        }
    }
    Ok(res.map_into_left_body())
}

/// The user behind the request's API key or session cookie: `None` when it carries neither.
async fn resolve(state: &AppState, req: &HttpRequest) -> Option<Result<(User, Via), AppError>> {
    let bearer = bearer(req);
    let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
    let now = state.clock.now();
    if let Some(secret) = bearer {
        let found = state.store.run(move |c| tokens::resolve(c, now, &secret)).await;
        return Some(found.and_then(|found| {
            let (token, user) = found.ok_or_else(|| {
                AppError::new(ErrorKind::Unauthenticated, "the API token is invalid, expired or revoked")
            })?;
            Ok((user, Via::ApiToken { id: token.id, expires_at: token.expires_at }))
        }));
    }
    let token = cookie?;
    let (ip, ua) = (client_ip(req, &state.proxies), user_agent(req));
    let cfg = state.config.auth.clone();
    let t = token.clone();
    let resolved = state
        .store
        .run(move |c| {
            let lookup = sessions::resolve(c, now, &cfg, &t)?;
            if let sessions::Lookup::Refused { why, user_id: Some(user_id) } = &lookup {
                let reason = match why {
                    sessions::Refusal::IdleExpired => "idle_timeout",
                    sessions::Refusal::AbsoluteExpired => "absolute_timeout",
                    sessions::Refusal::UserDisabled => "user_disabled",
                    sessions::Refusal::Unknown => "unknown",
                };
                let actor = Actor {
                    user_id: Some(*user_id),
                    name: format!("user#{user_id}"),
                    method: Some("session".into()),
                    ip: Some(ip),
                    user_agent: ua,
                    ..Default::default()
                };
                audit::record(
                    c,
                    now,
                    &Event::new(&actor, "auth.session_end", Outcome::Denied)
                        .details(serde_json::json!({"reason": reason})),
                )?;
            }
            Ok(lookup)
        })
        .await;
    Some(resolved.and_then(|lookup| match lookup {
        sessions::Lookup::Live(session, user) => {
            Ok((*user, Via::Session { token, csrf: session.csrf_token }))
        }
        _ => Err(AppError::unauthenticated()),
    }))
}

impl<P: Policy + 'static> FromRequest for Authed<P> {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use actix_web::HttpMessage;
        let identified = req.extensions().get::<Identified>().map(|i| i.0.clone());
        let Some(identified) = identified else {
            return std::future::ready(Err(AppError::unauthenticated()));
        };
        let ip = req
            .app_data::<web::Data<AppState>>()
            .map_or_else(|| "unknown".into(), |s| client_ip(req, &s.proxies));
        let authed = identified.map(|(user, via)| Authed {
            user,
            via,
            ip,
            user_agent: user_agent(req),
            _policy: PhantomData,
        });
        std::future::ready(authed.and_then(|authed| {
            if P::allows(&authed.user) {
                return Ok(authed);
            }
            let path = format!("{} {}", req.method(), req.path());
            req.extensions_mut().insert(Denied(authed.actor(), path, authed.user.role.as_str()));
            Err(AppError::forbidden("your role does not allow this"))
        }))
    }
}
