//! Letting in someone a directory vouches for (LDAP, OIDC): the mappings decide their role and
//! groups; their Ayush account is created at first sign-in or linked; a session is issued.
//! Every refusal is recorded with its reason; those of password sign-ins count towards the
//! lockout.

use super::users::{self, UserRow};
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
    /// The identity is the external id, and only it (OIDC: the subject; the username claim is
    /// not unique, OIDC Core 5.7). An existing account is this person's only when it holds that
    /// identity: linked at an earlier sign-in, by an admin (`ayushctl user link`), or by a
    /// verified email when the provider allows it. (LDAP: a DN may change with a rename, and
    /// the directory's usernames are unique, so LDAP links the account of that name.)
    pub strict_external_id: bool,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub groups: BTreeSet<String>,
    pub default_role: Option<Role>,
    /// Create an account at the first sign-in, or only admit people an admin created.
    pub create_users: bool,
    /// Link to an unlinked account holding `email`, which the provider has verified.
    pub link_by_email: bool,
    /// The account a refusal counts against for the lockout: sign-ins where a password was
    /// typed here (LDAP). A provider's sign-in is no password guess, so it counts for nothing.
    pub lockout: Option<throttle::Account>,
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

/// Records a refused sign-in (counting it against `lockout`, when a password was typed) and
/// returns its error.
#[allow(clippy::too_many_arguments)]
pub async fn refuse(
    store: &Store,
    now: i64,
    actor: Actor,
    username: String,
    ip: String,
    source: &str,
    lockout: Option<throttle::Account>,
    refusal: Refusal,
) -> AppResult<SignedIn> {
    let Refusal { reason, details, error } = refusal;
    let source = source.to_string();
    store
        .run(move |c| {
            c.transaction(|c| {
                if let Some(account) = &lockout {
                    throttle::record_failure(c, now, account, &ip)?;
                }
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
    let (source, lockout) = (who.source.clone(), who.lockout.clone());
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
                            "none of your directory groups gives access here; ask your administrator",
                        ),
                    }));
                };
                let system = Actor {
                    name: format!("directory:{}", who.source),
                    method: Some("directory".into()),
                    ..Default::default()
                };
                let user = match account_of(c, &who)? {
                    Err(refusal) => return Ok(Err(refusal)),
                    Ok(None) if !who.create_users => {
                        return Ok(Err(Refusal::new(
                            "no_account",
                            AppError::new(
                                ErrorKind::Forbidden,
                                "you have no account here yet; ask your administrator",
                            ),
                        )));
                    }
                    Ok(None) => {
                        let account = users::DirectoryAccount {
                            username: &who.username,
                            display_name: &who.display_name,
                            role,
                            source: &who.source,
                            external_id: &who.external_id,
                            email: who.email.as_deref(),
                        };
                        users::create_from_directory(c, now, &system, &account)?
                    }
                    Ok(Some(row)) if row.disabled => {
                        return Ok(Err(Refusal::new(
                            "disabled",
                            AppError::new(ErrorKind::Forbidden, "your account here is disabled"),
                        )));
                    }
                    Ok(Some(row)) => {
                        let account = users::DirectoryAccount {
                            username: &row.username,
                            display_name: &who.display_name,
                            role,
                            source: &who.source,
                            external_id: &who.external_id,
                            email: who.email.as_deref(),
                        };
                        users::link_directory(c, now, row.id, &account)?;
                        users::User::try_from(row)?
                    }
                };
                let changes = mapping::apply(c, now, &system, &user, &decision, false)?;
                let user = users::get_by_id(c, user.id)?;
                if let Some(old) = &client.previous_session {
                    sessions::delete(c, old)?;
                }
                if let Some(account) = &who.lockout {
                    throttle::clear_account(c, account)?;
                }
                users::note_sign_in(c, now, user.id)?;
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
        Err(refusal) => refuse(store, now, actor, typed, ip, &source, lockout, refusal).await,
    }
}

/// The existing account the person is, if any; or why they may not have the one their name
/// points at.
fn account_of(c: &mut crate::store::Conn, who: &Admission) -> AppResult<Result<Option<UserRow>, Refusal>> {
    let conflict = |reason, message: String| Ok(Err(Refusal::new(reason, AppError::conflict(message))));
    if who.strict_external_id {
        if let Some(row) = users::find_by_identity(c, &who.source, &who.external_id)? {
            return Ok(Ok(Some(row)));
        }
        if who.link_by_email
            && let Some(email) = &who.email
        {
            let mut found = users::unlinked_with_email(c, email)?;
            if found.len() == 1 {
                return Ok(Ok(found.pop()));
            }
        }
        return match users::find_row(c, &who.username)? {
            None => Ok(Ok(None)),
            Some(row) => Ok(Err(Refusal {
                reason: "account_not_linked",
                details: serde_json::json!({"external_id": who.external_id}),
                error: AppError::conflict(format!(
                    "an Ayush account named {:?} exists, but it is not linked to this sign-in; ask your \
                     administrator to link it (ayushctl user link {} --provider {} --subject …)",
                    row.username,
                    row.username,
                    who.source.strip_prefix("oidc:").unwrap_or(&who.source),
                )),
            })),
        };
    }
    match users::find_row(c, &who.username)? {
        Some(row) if row.auth_source == "local" && row.password_hash.is_some() => {
            conflict("local_account_conflict", "a local account has this name; ask your administrator".into())
        }
        Some(row) if row.kind == users::Kind::Service.as_str() => conflict(
            "service_account_conflict",
            "a service account has this name; ask your administrator".into(),
        ),
        Some(row) if row.auth_source != "local" && row.auth_source != who.source => conflict(
            "account_of_another_identity",
            "this username belongs to another sign-in identity; ask your administrator".into(),
        ),
        found => Ok(Ok(found)),
    }
}
