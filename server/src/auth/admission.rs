//! Letting in someone a directory vouches for (LDAP, OIDC): the mappings decide their role and
//! groups; their Ayush account is created at first sign-in or linked; a session is issued.
//! Every refusal is recorded with its reason and counted towards the lockout.

use super::users;
use super::{Role, mapping, sessions, throttle};
use crate::audit::{self, Actor, Event, Outcome};
use crate::config::AuthConfig;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Store;
use std::collections::BTreeSet;

pub use super::login::SignedIn;

/// Who the directory says the person is.
pub struct Admission {
    /// `ldap`, or `oidc:<provider>`.
    pub source: String,
    /// The DN, or `issuer|subject`.
    pub external_id: String,
    /// An existing account of this source must carry the same external id (OIDC: the subject
    /// is the identity; a DN may change with a rename, so LDAP links whatever it finds).
    pub strict_external_id: bool,
    pub username: String,
    pub display_name: String,
    pub groups: BTreeSet<String>,
    pub default_role: Option<Role>,
    /// Create an account at the first sign-in, or only admit people an admin created.
    pub create_users: bool,
}

/// Where the sign-in came from.
pub struct Client {
    pub ip: String,
    pub user_agent: Option<String>,
    /// The session the browser held before, ended so the session id is never reused.
    pub previous_session: Option<String>,
}

/// Why a sign-in was refused: what the audit log records, and what the person is told.
pub struct Refusal {
    pub reason: &'static str,
    pub details: serde_json::Value,
    pub error: AppError,
}

impl Refusal {
    fn new(reason: &'static str, error: AppError) -> Refusal {
        Refusal { reason, details: serde_json::json!({}), error }
    }
}

/// Records a refused sign-in (counting it against the account) and returns its error.
pub async fn refuse(
    store: &Store,
    now: i64,
    actor: Actor,
    username: String,
    ip: String,
    source: &str,
    refusal: Refusal,
) -> AppResult<SignedIn> {
    let Refusal { reason, details, error } = refusal;
    let source = source.to_string();
    store
        .run(move |c| {
            c.transaction(|c| {
                throttle::record_failure(c, now, &username, &ip)?;
                let mut d = serde_json::json!({"reason": reason, "source": source});
                if let (Some(d), Some(extra)) = (d.as_object_mut(), details.as_object()) {
                    d.extend(extra.clone());
                }
                let event =
                    Event::new(&actor, "auth.login", Outcome::Failure).target("user", &username).details(d);
                audit::record(c, now, &event)
            })
        })
        .await?;
    Err(error)
}

/// Admits the person, or refuses them with a recorded reason. `typed` is what they signed in
/// as (the audit log's target for a refusal).
pub async fn admit(
    store: &Store,
    now: i64,
    cfg: &AuthConfig,
    who: Admission,
    client: Client,
    actor: Actor,
    typed: String,
) -> AppResult<SignedIn> {
    let (cfg, signed_in_actor, ip) = (cfg.clone(), actor.clone(), client.ip.clone());
    let source = who.source.clone();
    let outcome = store
        .run(move |c| {
            c.transaction(|c| {
                let decision = mapping::decide(&mapping::rules(c)?, &who.groups, who.default_role);
                let groups: Vec<&String> = who.groups.iter().collect();
                let Some(role) = decision.role else {
                    return Ok(Err(Refusal {
                        reason: "no_mapping",
                        details: serde_json::json!({"directory_groups": groups}),
                        error: AppError::new(
                            ErrorKind::Forbidden,
                            "none of your directory groups gives access to Ayush; ask your administrator",
                        ),
                    }));
                };
                let system = Actor {
                    name: format!("directory:{}", who.source),
                    method: Some("directory".into()),
                    ..Default::default()
                };
                let user = match users::find_row(c, &who.username)? {
                    None if !who.create_users => {
                        return Ok(Err(Refusal::new(
                            "no_account",
                            AppError::new(
                                ErrorKind::Forbidden,
                                "you have no Ayush account yet; ask your administrator",
                            ),
                        )));
                    }
                    None => {
                        let account = users::DirectoryAccount {
                            username: &who.username,
                            display_name: &who.display_name,
                            role,
                            source: &who.source,
                            external_id: &who.external_id,
                        };
                        users::create_from_directory(c, now, &system, &account)?
                    }
                    Some(row) if row.auth_source == "local" && row.password_hash.is_some() => {
                        return Ok(Err(Refusal::new(
                            "local_account_conflict",
                            AppError::conflict("a local account has this name; ask your administrator"),
                        )));
                    }
                    Some(row)
                        if row.auth_source != "local"
                            && (row.auth_source != who.source
                                || (who.strict_external_id
                                    && row
                                        .external_id
                                        .as_deref()
                                        .is_some_and(|id| id != who.external_id))) =>
                    {
                        return Ok(Err(Refusal::new(
                            "account_of_another_identity",
                            AppError::conflict(
                                "this username belongs to another sign-in identity; ask your administrator",
                            ),
                        )));
                    }
                    Some(row) if row.disabled => {
                        return Ok(Err(Refusal::new(
                            "disabled",
                            AppError::new(ErrorKind::Forbidden, "your Ayush account is disabled"),
                        )));
                    }
                    Some(row) => {
                        users::link_directory(
                            c,
                            now,
                            row.id,
                            &who.source,
                            &who.external_id,
                            &who.display_name,
                        )?;
                        users::User::try_from(row)?
                    }
                };
                let changes = mapping::apply(c, now, &system, &user, &decision, false)?;
                let user = users::get_by_id(c, user.id)?;
                if let Some(old) = &client.previous_session {
                    sessions::delete(c, old)?;
                }
                throttle::clear_account(c, &who.username)?;
                let issued =
                    sessions::create(c, now, &cfg, user.id, Some(&client.ip), client.user_agent.as_deref())?;
                if let Some(provider) = who.source.strip_prefix("oidc:") {
                    sessions::set_sso_provider(c, &issued.session.id_hash, provider)?;
                }
                let actor = Actor { user_id: Some(user.id), name: user.username.clone(), ..signed_in_actor };
                let details = serde_json::json!({
                    "source": who.source, "external_id": who.external_id, "directory_groups": groups,
                    "role": user.role, "changes": changes,
                });
                let event = Event::new(&actor, "auth.login", Outcome::Success)
                    .target("user", &user.username)
                    .details(details);
                audit::record(c, now, &event)?;
                Ok(Ok(SignedIn { user, issued }))
            })
        })
        .await?;
    match outcome {
        Ok(signed) => Ok(signed),
        Err(refusal) => refuse(store, now, actor, typed, ip, &source, refusal).await,
    }
}
