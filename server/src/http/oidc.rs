//! The browser side of OpenID Connect sign-in: `/auth/oidc/{provider}/start` sends the browser
//! to the provider with a fresh state, nonce and PKCE challenge; `/callback` takes its answer,
//! exchanges the code, checks the ID token (and userinfo), and admits the person through the
//! same mappings as LDAP. Every refusal is shown on the sign-in page and recorded.

use crate::audit::Actor;
use crate::auth::admission::{Admission, Client, Refusal, SignedIn, admit, refuse};
use crate::auth::oidc::{self, Flow, Provider, token};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::http::api;
use crate::http::guard::{SESSION_COOKIE, client_ip, header_values, user_agent};
use crate::http::routes::Routes;
use crate::http::sign_in::login_form;
use crate::http::ui::safe_next;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::sync::Arc;

/// How far the provider's clock may be from ours.
const SKEW_SECS: i64 = 60;

pub fn routes(r: &mut Routes) {
    r.get("/auth/oidc/{provider}/start", start).get("/auth/oidc/{provider}/callback", callback);
}

/// Our address as the provider must redirect to it: `oidc.public_url`, else the request's own
/// scheme and host. `X-Forwarded-Host` and `X-Forwarded-Proto` count only from a trusted proxy.
pub fn base_url(state: &AppState, req: &HttpRequest) -> String {
    if let Some(url) = &state.config.oidc.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let forwarded = |name: &str| {
        let peer = req.peer_addr()?.ip();
        state.proxies.forwarded(peer, &header_values(req, name)).map(str::to_string)
    };
    let scheme = forwarded("x-forwarded-proto")
        .filter(|p| p == "http" || p == "https")
        .unwrap_or_else(|| if state.config.is_tls() { "https" } else { "http" }.into());
    let host = forwarded("x-forwarded-host")
        .or_else(|| req.headers().get("host").and_then(|h| h.to_str().ok()).map(str::to_string))
        .unwrap_or_else(|| state.config.server.listen.clone());
    format!("{scheme}://{host}")
}

fn redirect_uri(state: &AppState, req: &HttpRequest, provider: &str) -> String {
    format!("{}/auth/oidc/{}/callback", base_url(state, req), crate::url::encode_component(provider))
}

fn provider(state: &AppState, name: &str) -> AppResult<Arc<Provider>> {
    state.oidc.get(name).ok_or_else(|| AppError::not_found(format!("no sign-in provider {name:?}")))
}

#[derive(Deserialize)]
struct StartQuery {
    next: Option<String>,
}

/// The cookie that ties a sign-in to the browser that started it: it holds the SHA-256 of the
/// flow's `state`, so an answer carrying someone else's state (login CSRF: a victim signed in
/// as the attacker) is refused. `__Host-` (HTTPS only: no domain, path /) when cookies are
/// secure; browsers refuse that prefix over plain HTTP.
fn binding_cookie_name(state: &AppState) -> &'static str {
    if state.config.secure_cookies() { "__Host-ayush_oidc" } else { "ayush_oidc" }
}

fn binding_cookie(state: &AppState, value: String) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(binding_cookie_name(state), value)
        .path("/")
        .http_only(true)
        // The provider sends the browser back with a top-level GET from its own site.
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(state.config.secure_cookies())
        .max_age(actix_web::cookie::time::Duration::seconds(oidc::FLOW_TTL))
        .finish()
}

async fn start(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<StartQuery>,
) -> HttpResponse {
    let name = path.into_inner();
    let next = safe_next(query.next.as_deref().unwrap_or("/"));
    let result: AppResult<(String, String)> = async {
        let provider = provider(&state, &name)?;
        let (state_token, nonce, verifier) = (oidc::random(), oidc::random(), oidc::random());
        let redirect = redirect_uri(&state, &req, &name);
        let flow = Flow {
            provider: name.clone(),
            nonce: nonce.clone(),
            verifier: verifier.clone(),
            next,
            created_at: state.clock.now(),
        };
        let st = state_token.clone();
        state.store.run(move |c| oidc::save_flow(c, &st, &flow)).await?;
        let binding = crate::auth::secret::digest(&state_token);
        let url = web::block(move || provider.authorize_url(&redirect, &state_token, &nonce, &verifier))
            .await
            .map_err(AppError::internal)?
            .map_err(|e| {
                AppError::new(ErrorKind::Unavailable, format!("the sign-in provider cannot be reached: {e}"))
            })?;
        Ok((url, binding))
    }
    .await;
    match result {
        Ok((url, binding)) => HttpResponse::Found()
            .insert_header(("Location", url))
            .insert_header(("Cache-Control", "no-store"))
            .cookie(binding_cookie(&state, binding))
            .finish(),
        Err(e) => login_form(&state, "/", "", Some(e.message), e.kind.status(), false),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn refusal(reason: &'static str, message: impl Into<String>, kind: ErrorKind) -> Refusal {
    Refusal { reason, details: serde_json::json!({}), error: AppError::new(kind, message.into()) }
}

/// Why an answer was not let in.
enum Rejected {
    /// Nothing shows this browser started a sign-in here: noise anyone can send.
    Noise(Refusal),
    /// A sign-in this browser started, refused; `String` is the username, when known.
    Refused(String, Refusal),
}

async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let name = path.into_inner();
    let q = query.into_inner();
    let ip = client_ip(&req, &state.proxies);
    let ua = user_agent(&req);
    let actor = Actor {
        name: format!("oidc:{name}"),
        method: Some("oidc".into()),
        ip: Some(ip.clone()),
        user_agent: ua.clone(),
        ..Default::default()
    };
    let client = Client {
        ip: ip.clone(),
        user_agent: ua,
        previous_session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()),
    };
    let redirect = redirect_uri(&state, &req, &name);
    let bound = req.cookie(binding_cookie_name(&state)).map(|c| c.value().to_string());
    let source = format!("oidc:{name}");
    let outcome = match check(&state, &name, q, bound, &redirect).await {
        Ok((who, next)) => {
            let typed = who.username.clone();
            admit(&state.store, state.clock.now(), &state.config.auth, who, client, actor, typed)
                .await
                .map(|s| (s, next))
        }
        Err(Rejected::Refused(typed, r)) => {
            tracing::info!(provider = %name, reason = r.reason, error = %r.error.message, "OIDC sign-in refused");
            refuse(&state.store, state.clock.now(), actor, typed, ip, &source, None, r)
                .await
                .map(|s| (s, "/".into()))
        }
        Err(Rejected::Noise(r)) => {
            tracing::debug!(provider = %name, reason = r.reason, "an OIDC answer nobody started here");
            noise(&state, actor, ip, &source, r).await.map(|s| (s, "/".into()))
        }
    };
    let mut resp = match outcome {
        Ok((signed, next)) => {
            let mut resp = HttpResponse::SeeOther().insert_header(("Location", safe_next(&next))).finish();
            let _ = resp.add_cookie(&api::session_cookie(&state, signed.issued.token));
            resp
        }
        Err(e) => login_form(&state, "/", "", Some(e.message), e.kind.status(), false),
    };
    // The binding served its one sign-in.
    let mut gone = binding_cookie(&state, String::new());
    gone.make_removal();
    let _ = resp.add_cookie(&gone);
    resp
}

/// Records noise as the noise limiter allows (never against the lockout), and returns its error.
async fn noise(state: &AppState, actor: Actor, ip: String, source: &str, r: Refusal) -> AppResult<SignedIn> {
    let now = state.clock.now();
    let (record, summary) = state.noise.admit(now, r.reason, &ip);
    if let Some(summary) = summary {
        state.store.run(move |c| summary.record(c, now)).await?;
    }
    if record {
        return refuse(&state.store, now, actor, String::new(), ip, source, None, r).await;
    }
    Err(r.error)
}

/// Everything between the provider's answer and knowing who the person is. `bound` is the
/// binding cookie the browser sent.
async fn check(
    state: &AppState,
    name: &str,
    q: CallbackQuery,
    bound: Option<String>,
    redirect: &str,
) -> Result<(Admission, String), Rejected> {
    let anon = |r: Refusal| Rejected::Refused(String::new(), r);
    let provider = provider(state, name)
        .map_err(|e| Rejected::Noise(refusal("unknown_provider", e.message, ErrorKind::NotFound)))?;
    // The state is single-use: a replayed answer finds nothing.
    let state_param = q.state.unwrap_or_default();
    let binding = crate::auth::secret::digest(&state_param);
    let flow = state
        .store
        .run(move |c| oidc::take_flow(c, &state_param))
        .await
        .map_err(|e| anon(refusal("internal", e.message, ErrorKind::Internal)))?
        .ok_or_else(|| {
            Rejected::Noise(refusal(
                "state_unknown_or_replayed",
                "this sign-in has expired or was already used; start again",
                ErrorKind::BadRequest,
            ))
        })?;
    if !bound.is_some_and(|b| crate::auth::secret::constant_time_eq(&b, &binding)) {
        return Err(Rejected::Noise(refusal(
            "state_not_bound_to_browser",
            "this sign-in was not started in this browser; start again from the sign-in page",
            ErrorKind::BadRequest,
        )));
    }
    let now = state.clock.now();
    if flow.provider != name || now - flow.created_at > oidc::FLOW_TTL {
        return Err(anon(refusal(
            "state_expired",
            "this sign-in has expired; start again",
            ErrorKind::BadRequest,
        )));
    }
    if let Some(error) = q.error {
        let why = q.error_description.unwrap_or(error);
        return Err(anon(refusal(
            "provider_error",
            format!("the sign-in provider refused: {why}"),
            ErrorKind::Forbidden,
        )));
    }
    if let Some(iss) = &q.iss
        && iss != &provider.cfg.issuer
    {
        // RFC 9207: an answer from another issuer (mix-up attack).
        return Err(anon(refusal(
            "wrong_issuer_in_response",
            "the answer came from another provider",
            ErrorKind::Forbidden,
        )));
    }
    let code =
        q.code.ok_or_else(|| anon(refusal("no_code", "the provider sent no code", ErrorKind::BadRequest)))?;
    let (p, redirect, verifier, nonce) =
        (provider.clone(), redirect.to_string(), flow.verifier.clone(), flow.nonce.clone());
    let cfg = provider.cfg.clone();
    let checked = web::block(move || -> Result<(serde_json::Value, Option<serde_json::Value>), Refusal> {
        let tokens = p
            .exchange(&code, &verifier, &redirect)
            .map_err(|e| refusal("token_exchange_failed", e, ErrorKind::Unavailable))?;
        let expected = token::Expected {
            issuer: &p.cfg.issuer,
            client_id: &p.cfg.client_id,
            nonce: &nonce,
            now,
            skew: SKEW_SECS,
        };
        let reject = |e: token::TokenError| refusal(e.reason(), e.to_string(), ErrorKind::Forbidden);
        let keys = p.keys(false).map_err(|e| refusal("provider_unreachable", e, ErrorKind::Unavailable))?;
        let claims = match token::validate(token::parse(&tokens.id_token).map_err(reject)?, &keys, &expected)
        {
            // A key not seen yet: the provider rotated its keys; fetch them once more.
            Err(token::TokenError::UnknownKey(_)) => {
                let keys =
                    p.keys(true).map_err(|e| refusal("provider_unreachable", e, ErrorKind::Unavailable))?;
                token::validate(token::parse(&tokens.id_token).map_err(reject)?, &keys, &expected)
                    .map_err(reject)?
            }
            other => other.map_err(reject)?,
        };
        let info = match &tokens.access_token {
            Some(at) => p.userinfo(at).map_err(|e| refusal("userinfo_failed", e, ErrorKind::Unavailable))?,
            None => None,
        };
        Ok((claims, info))
    })
    .await
    .map_err(|e| anon(refusal("internal", e.to_string(), ErrorKind::Internal)))?
    .map_err(anon)?;
    let (claims, info) = checked;
    let who = oidc::identity(&provider, &claims, info.as_ref())
        .map_err(|(reason, message)| anon(refusal(reason, message, ErrorKind::Forbidden)))?;
    if crate::auth::users::validate_username(&who.username).is_err() {
        let message = format!("your username {:?} from the provider cannot be a username here", who.username);
        return Err(Rejected::Refused(
            who.username,
            refusal("unusable_username", message, ErrorKind::Forbidden),
        ));
    }
    let admission = Admission {
        source: format!("oidc:{name}"),
        external_id: oidc::external_id(&cfg.issuer, &who.subject),
        strict_external_id: true,
        username: who.username,
        display_name: who.display_name,
        link_by_email: cfg.link_by_verified_email && who.email_verified,
        email: who.email,
        groups: who.groups,
        default_role: cfg.default_role.parse().ok(),
        create_users: cfg.create_users,
        lockout: None,
    };
    Ok((admission, flow.next))
}

/// Signing out of a session that came through a provider which supports RP-initiated logout
/// continues there; the answer is where the browser goes next.
pub async fn after_sign_out(state: &AppState, req: &HttpRequest, provider: Option<String>) -> String {
    let Some(p) = provider.and_then(|name| state.oidc.get(&name)) else { return "/login".into() };
    let back = format!("{}/login", base_url(state, req));
    web::block(move || p.logout_url(&back)).await.ok().flatten().unwrap_or_else(|| "/login".into())
}
