//! JSON API for the web UI, scripts and `ayushctl` in remote mode.

use crate::audit::{self, Event, Outcome};
use crate::auth::guard::{AdminOnly, AnyUser, Authed, SESSION_COOKIE, Via, client_ip, user_agent};
use crate::auth::{Role, groups, login, password, users};
use crate::catalog::{Upload, access};
use crate::error::{AppError, AppResult};
use crate::http::routes::Routes;
use crate::state::AppState;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

/// What `/api/…` paths that no route serves answer.
pub async fn unknown_endpoint() -> AppResult<HttpResponse> {
    Err(AppError::not_found("no such API endpoint"))
}

pub fn routes(r: &mut Routes) {
    r.post("/api/auth/login", login_json)
        .post("/api/auth/logout", logout_json)
        .get("/api/me", me)
        .get("/api/admin/users", list_users)
        .post("/api/admin/users", create_user)
        .get("/api/admin/users/{username}", get_user)
        .patch("/api/admin/users/{username}", update_user)
        .post("/api/admin/users/{username}/password", reset_password)
        .post("/api/admin/users/{username}/link", link_user)
        .post("/api/admin/users/{username}/deprovision", deprovision_user)
        .get("/api/admin/groups", list_groups)
        .post("/api/admin/groups", create_group)
        .get("/api/admin/groups/{name}", get_group)
        .delete("/api/admin/groups/{name}", delete_group)
        .put("/api/admin/groups/{name}/members/{username}", add_member)
        .delete("/api/admin/groups/{name}/members/{username}", remove_member)
        .get("/api/admin/models", list_models_admin)
        .post("/api/admin/models", upload_model)
        .delete("/api/admin/models/{name}", remove_model)
        .post("/api/admin/models/{name}/verify", verify_model)
        .put("/api/admin/models/{name}/default", set_default_model)
        .put("/api/admin/models/{name}/groups/{group}", allow_model)
        .delete("/api/admin/models/{name}/groups/{group}", disallow_model);
}

pub fn session_cookie(state: &AppState, token: String) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.secure_cookies())
        .finish()
}

pub fn removal_cookie(state: &AppState) -> Cookie<'static> {
    let mut c = session_cookie(state, String::new());
    c.make_removal();
    c
}

/// Hashes off the async executor: argon2id is deliberately slow.
pub async fn hash_password(pw: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || password::hash(&pw)).await.map_err(AppError::internal)?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: String,
    password: String,
}

async fn login_json(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<LoginBody>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let attempt = login::Attempt {
        username: body.username,
        password: body.password,
        ip: client_ip(&req, &state.proxies),
        user_agent: user_agent(&req),
        previous_session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_string()),
    };
    let signed = login::sign_in(&state.authority(), attempt).await?;
    Ok(HttpResponse::Ok()
        .cookie(session_cookie(&state, signed.issued.token))
        .json(serde_json::json!({"user": signed.user})))
}

async fn logout_json(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    if let Via::Session { token, .. } = &who.via {
        login::sign_out(&state.store, &state.clock, who.actor(), token.clone()).await?;
    }
    Ok(HttpResponse::NoContent().cookie(removal_cookie(&state)).finish())
}

async fn me(state: web::Data<AppState>, who: Authed<AnyUser>) -> AppResult<HttpResponse> {
    let id = who.user.id;
    let groups = state.store.run(move |c| groups::of_user(c, id)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": who.user, "groups": groups})))
}

async fn list_users(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.store.run(users::list).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub role: Role,
    #[serde(default)]
    pub display_name: String,
    pub password: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `person` (the default) or `service`: an account for a script, with API keys only.
    #[serde(default)]
    pub kind: users::Kind,
}

impl CreateUser {
    /// The account to store, with its password already hashed.
    pub fn to_new<'a>(&'a self, password_hash: Option<&'a str>) -> users::NewUser<'a> {
        users::NewUser {
            username: &self.username,
            display_name: &self.display_name,
            role: self.role,
            password_hash,
            email: self.email.as_deref(),
            kind: self.kind,
        }
    }
}

/// Shared by the JSON API and the admin page.
pub async fn create_user_with(
    state: &AppState,
    actor: crate::audit::Actor,
    body: CreateUser,
) -> AppResult<users::User> {
    users::validate_username(&body.username)?;
    let hash = match body.password.clone() {
        Some(pw) => {
            password::check_policy(&pw, &body.username, state.config.auth.password_min_length)?;
            Some(hash_password(pw).await?)
        }
        None => None,
    };
    let now = state.clock.now();
    state.store.run(move |c| users::create(c, now, &actor, &body.to_new(hash.as_deref()))).await
}

async fn create_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<CreateUser>,
) -> AppResult<HttpResponse> {
    let user = create_user_with(&state, who.actor(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(user))
}

async fn get_user(
    state: web::Data<AppState>,
    _: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let (user, groups) = state
        .store
        .run(move |c| {
            let u = users::get(c, &name)?;
            let g = groups::of_user(c, u.id)?;
            Ok((u, g))
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"user": user, "groups": groups})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    role: Option<Role>,
    disabled: Option<bool>,
    display_name: Option<String>,
}

async fn update_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<UpdateUser>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let body = body.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    let user = state
        .store
        .run(move |c| {
            c.transaction(|c| {
                let mut user = users::get(c, &name)?;
                if let Some(display) = &body.display_name {
                    user = users::set_display_name(c, now, &actor, &name, display)?;
                }
                if let Some(role) = body.role {
                    user = users::set_role(c, now, &actor, &name, role)?;
                }
                if let Some(disabled) = body.disabled {
                    user = users::set_disabled(c, now, &actor, &name, disabled)?;
                }
                Ok(user)
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(user))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    password: String,
}

pub async fn reset_password_with(
    state: &AppState,
    actor: crate::audit::Actor,
    username: String,
    pw: String,
) -> AppResult<()> {
    password::check_policy(&pw, &username, state.config.auth.password_min_length)?;
    let hash = hash_password(pw).await?;
    let now = state.clock.now();
    state.store.run(move |c| users::set_password(c, now, &actor, &username, &hash)).await
}

async fn reset_password(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<PasswordBody>,
) -> AppResult<HttpResponse> {
    reset_password_with(&state, who.actor(), path.into_inner(), body.into_inner().password).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkBody {
    provider: String,
    subject: String,
}

/// Links an OIDC identity to an existing account.
async fn link_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
    body: web::Json<LinkBody>,
) -> AppResult<HttpResponse> {
    let (name, body) = (path.into_inner(), body.into_inner());
    let (source, external_id) =
        crate::auth::oidc::identity_for(&state.config.oidc.providers, &body.provider, &body.subject)?;
    let (now, actor) = (state.clock.now(), who.actor());
    let user =
        state.store.run(move |c| users::link_identity(c, now, &actor, &name, &source, &external_id)).await?;
    Ok(HttpResponse::Ok().json(user))
}

/// Takes an account out of use for good (disabled, signed out, keys revoked, groups left).
async fn deprovision_user(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let (name, now, actor) = (path.into_inner(), state.clock.now(), who.actor());
    Ok(HttpResponse::Ok().json(state.store.run(move |c| users::deprovision(c, now, &actor, &name)).await?))
}

async fn list_groups(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.store.run(groups::list).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateGroup {
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_group(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    body: web::Json<CreateGroup>,
) -> AppResult<HttpResponse> {
    let body = body.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    let group =
        state.store.run(move |c| groups::create(c, now, &actor, &body.name, &body.description)).await?;
    Ok(HttpResponse::Created().json(group))
}

async fn get_group(
    state: web::Data<AppState>,
    _: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let (group, members) = state
        .store
        .run(move |c| {
            let g = groups::get(c, &name)?;
            let m = groups::members(c, &g)?;
            Ok((g, m))
        })
        .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"group": group, "members": members})))
}

async fn delete_group(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    state.store.run(move |c| groups::delete(c, now, &actor, &name)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn add_member(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (group, user) = path.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    state.store.run(move |c| groups::add_member(c, now, &actor, &group, &user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn remove_member(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (group, user) = path.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    state.store.run(move |c| groups::remove_member(c, now, &actor, &group, &user)).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Every model with the groups it is restricted to (an empty list: open to everyone).
async fn list_models_admin(state: web::Data<AppState>, _: Authed<AdminOnly>) -> AppResult<HttpResponse> {
    let catalog = state.catalog.clone();
    let entries = state
        .store
        .run(move |c| {
            let entries = crate::catalog::all(&catalog, c)?;
            access::annotate(c, entries)
        })
        .await?;
    Ok(HttpResponse::Ok().json(entries))
}

async fn allow_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (model, group) = path.into_inner();
    let (now, actor, catalog) = (state.clock.now(), who.actor(), state.catalog.clone());
    state
        .store
        .run(move |c| {
            crate::catalog::find(&catalog, c, &model)?;
            access::allow(c, now, &actor, &model, &group)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn disallow_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<(String, String)>,
) -> AppResult<HttpResponse> {
    let (model, group) = path.into_inner();
    let (now, actor) = (state.clock.now(), who.actor());
    state.store.run(move |c| access::disallow(c, now, &actor, &model, &group)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct UploadQuery {
    name: String,
    /// The uploader's file name, kept in the manifest.
    source: Option<String>,
}

/// A GGUF file as the request body (`application/octet-stream`, an API token): streamed to
/// disk, hashed on the way, then checked and named exactly as a local import is.
async fn upload_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    query: web::Query<UploadQuery>,
    mut body: web::Payload,
) -> AppResult<HttpResponse> {
    let UploadQuery { name, source } = query.into_inner();
    // The name is checked once the body is in: a client still sending a large file does not
    // read an early answer (ayushctl checks the name and the file before it uploads).
    let mut upload = Upload::create(state.catalog.partial_path()?)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<web::Bytes>(16);
    let writer = tokio::task::spawn_blocking(move || {
        while let Some(chunk) = rx.blocking_recv() {
            if let Err(e) = upload.write(&chunk) {
                upload.abandon();
                return Err(e);
            }
        }
        Ok(upload)
    });
    let mut failed = None;
    while let Some(chunk) = crate::http::next_chunk(&mut body).await {
        match chunk {
            Ok(bytes) => {
                if tx.send(bytes).await.is_err() {
                    break; // the writer stopped on an error, which it returns below
                }
            }
            Err(e) => {
                failed = Some(AppError::validation(format!("the upload broke off: {e}")));
                break;
            }
        }
    }
    drop(tx);
    let upload = writer.await.map_err(AppError::internal)??;
    if let Some(e) = failed {
        upload.abandon();
        return Err(e);
    }
    let source = source.map_or_else(|| "an upload".into(), |s| format!("upload of {s}"));
    let placed = upload.finish(source)?;
    let (now, by, catalog) = (state.clock.now(), who.actor().name, state.clone());
    let manifest =
        tokio::task::spawn_blocking(move || catalog.catalog.finish_import(placed, &name, &by, now))
            .await
            .map_err(AppError::internal)??;
    let details = serde_json::json!({"sha256": manifest.sha256, "source": manifest.source});
    model_event(&state, &who, "model.import", manifest.name.clone(), details).await?;
    Ok(HttpResponse::Created().json(manifest))
}

/// Records what an admin did to a model.
async fn model_event(
    state: &AppState,
    who: &Authed<AdminOnly>,
    action: &'static str,
    name: String,
    details: serde_json::Value,
) -> AppResult<()> {
    let (now, actor) = (state.clock.now(), who.actor());
    state
        .store
        .run(move |c| {
            let event = Event::new(&actor, action, Outcome::Success).target("model", &name).details(details);
            audit::record(c, now, &event)
        })
        .await
}

async fn remove_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    state.catalog.remove(&name)?;
    model_event(&state, &who, "model.remove", name, serde_json::json!({})).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn set_default_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    state.catalog.set_default(&name)?;
    model_event(&state, &who, "model.set_default", name, serde_json::json!({})).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-hashes the file against its manifest: `{"name", "ok"}`.
async fn verify_model(
    state: web::Data<AppState>,
    who: Authed<AdminOnly>,
    path: web::Path<String>,
) -> AppResult<HttpResponse> {
    let name = path.into_inner();
    let (catalog, n) = (state.clone(), name.clone());
    let ok = tokio::task::spawn_blocking(move || catalog.catalog.verify(&n, |_, _| {}))
        .await
        .map_err(AppError::internal)??;
    model_event(&state, &who, "model.verify", name.clone(), serde_json::json!({"ok": ok})).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name, "ok": ok})))
}
