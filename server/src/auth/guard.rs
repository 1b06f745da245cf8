//! The permission guard lives in the extractor's type: a handler that takes `Authed<AdminOnly>`
//! cannot run for anyone but an enabled admin, and cannot forget to check.

use super::users::User;
use super::{Role, sessions, tokens};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, ErrorKind};
use crate::state::AppState;
use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

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
    pub fn issuer(&self) -> super::tokens::Issuer {
        let (user_id, admin) = (self.user.id, self.user.role == Role::Admin);
        match self.via {
            Via::Session { .. } => super::tokens::Issuer::Session { user_id, admin },
            Via::ApiToken { expires_at, .. } => super::tokens::Issuer::Key { user_id, admin, expires_at },
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

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

impl<P: Policy + 'static> FromRequest for Authed<P> {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = bearer(req);
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let ua = user_agent(req);
        let ip = state.as_ref().map_or_else(|| "unknown".into(), |s| client_ip(req, &s.proxies));
        let path = format!("{} {}", req.method(), req.path());
        Box::pin(async move {
            let state = state.ok_or_else(|| AppError::internal("app state missing"))?;
            let now = state.clock.now();
            let (user, via) = if let Some(secret) = bearer {
                let found = state.store.run(move |c| tokens::resolve(c, now, &secret)).await?;
                let (token, user) = found.ok_or_else(|| {
                    AppError::new(ErrorKind::Unauthenticated, "the API token is invalid, expired or revoked")
                })?;
                (user, Via::ApiToken { id: token.id, expires_at: token.expires_at })
            } else if let Some(token) = cookie {
                let cfg = state.config.auth.clone();
                let (t, ip2, ua2) = (token.clone(), ip.clone(), ua.clone());
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
                                ip: Some(ip2),
                                user_agent: ua2,
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
                    .await?;
                let sessions::Lookup::Live(session, user) = resolved else {
                    return Err(AppError::unauthenticated());
                };
                (user, Via::Session { token, csrf: session.csrf_token })
            } else {
                return Err(AppError::unauthenticated());
            };
            let authed = Authed { user, via, ip, user_agent: ua, _policy: PhantomData };
            if !P::allows(&authed.user) {
                let actor = authed.actor();
                let role = authed.user.role.as_str();
                state
                    .store
                    .run(move |c| {
                        let details = serde_json::json!({"request": path, "role": role});
                        let event = Event::new(&actor, "access.denied", Outcome::Denied).details(details);
                        audit::record(c, now, &event)
                    })
                    .await?;
                return Err(AppError::forbidden("your role does not allow this"));
            }
            Ok(authed)
        })
    }
}
