//! Directory groups mapped to Ayush roles and groups. The decision is a plain function over the
//! rules and the groups a directory reported (sans-IO); `apply` brings one account in line with
//! it, recording every change. Re-evaluated at each sign-in and each directory sync.

use super::Role;
use super::groups;
use super::users::{self, User};
use crate::audit::{self, Actor, Event, Outcome};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::store::Conn;
use crate::store::schema::{directory_mappings, groups as groups_table};
use diesel::prelude::*;
use serde::Serialize;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub id: i64,
    pub directory_group: String,
    pub role: Option<Role>,
    /// The Ayush group it grants membership of.
    pub group: Option<String>,
}

/// What the rules make of one person's directory groups.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Decision {
    /// The highest role any matching rule grants (admin > auditor > user), else the default;
    /// `None`: no access.
    pub role: Option<Role>,
    /// The Ayush groups they belong in.
    pub groups: BTreeSet<String>,
    /// Every Ayush group some rule manages: memberships of these follow the directory.
    pub managed: BTreeSet<String>,
}

fn rank(role: Role) -> u8 {
    match role {
        Role::User => 1,
        Role::Auditor => 2,
        Role::Admin => 3,
    }
}

/// Directory group names compare without regard to case, as LDAP and AD compare them.
pub fn decide(rules: &[Rule], directory_groups: &BTreeSet<String>, default_role: Option<Role>) -> Decision {
    let held: BTreeSet<String> = directory_groups.iter().map(|g| g.to_lowercase()).collect();
    let mut decision = Decision::default();
    let mut role: Option<Role> = None;
    for rule in rules {
        if let Some(g) = &rule.group {
            decision.managed.insert(g.clone());
        }
        if !held.contains(&rule.directory_group.to_lowercase()) {
            continue;
        }
        if let Some(r) = rule.role
            && role.is_none_or(|have| rank(r) > rank(have))
        {
            role = Some(r);
        }
        if let Some(g) = &rule.group {
            decision.groups.insert(g.clone());
        }
    }
    decision.role = role.or(default_role);
    decision
}

pub fn rules(conn: &mut Conn) -> AppResult<Vec<Rule>> {
    let rows: Vec<(i64, String, Option<String>, Option<String>)> = conn.load(
        directory_mappings::table.left_join(groups_table::table).order(directory_mappings::id.asc()).select(
            (
                directory_mappings::id,
                directory_mappings::directory_group,
                directory_mappings::role,
                groups_table::name.nullable(),
            ),
        ),
    )?;
    rows.into_iter()
        .map(|(id, directory_group, role, group)| {
            let role = role.map(|r| r.parse::<Role>().map_err(AppError::internal)).transpose()?;
            Ok(Rule { id, directory_group, role, group })
        })
        .collect()
}

/// Adds a rule: `directory_group` grants `role`, membership of `group`, or both.
pub fn add(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    directory_group: &str,
    role: Option<Role>,
    group: Option<&str>,
) -> AppResult<Rule> {
    let directory_group = directory_group.trim();
    if directory_group.is_empty() || directory_group.len() > 256 {
        return Err(AppError::validation("the directory group must be 1 to 256 characters"));
    }
    if role.is_none() && group.is_none() {
        return Err(AppError::validation("a mapping grants a role, a group, or both"));
    }
    conn.transaction(|conn| {
        let group_id = match group {
            Some(name) => Some(groups::get(conn, name)?.id),
            None => None,
        };
        let exists = rules(conn)?.into_iter().any(|r| {
            r.directory_group.eq_ignore_ascii_case(directory_group)
                && r.role == role
                && r.group.as_deref() == group
        });
        if exists {
            return Err(AppError::conflict("this mapping exists already"));
        }
        let id: i64 = conn.get_result(
            diesel::insert_into(directory_mappings::table)
                .values((
                    directory_mappings::directory_group.eq(directory_group),
                    directory_mappings::role.eq(role.map(Role::as_str)),
                    directory_mappings::group_id.eq(group_id),
                    directory_mappings::created_at.eq(now),
                ))
                .returning(directory_mappings::id),
        )?;
        let details = serde_json::json!({"directory_group": directory_group, "role": role, "group": group});
        audit::record(
            conn,
            now,
            &Event::new(actor, "mapping.create", Outcome::Success).target("mapping", id).details(details),
        )?;
        Ok(Rule { id, directory_group: directory_group.to_string(), role, group: group.map(str::to_string) })
    })
}

pub fn remove(conn: &mut Conn, now: i64, actor: &Actor, id: i64) -> AppResult<()> {
    conn.transaction(|conn| {
        let rule = rules(conn)?.into_iter().find(|r| r.id == id).ok_or_else(|| AppError::not_found(format!("no mapping {id}")))?;
        conn.execute(diesel::delete(directory_mappings::table.find(id)))?;
        let details = serde_json::json!({"directory_group": rule.directory_group, "role": rule.role, "group": rule.group});
        audit::record(conn, now, &Event::new(actor, "mapping.delete", Outcome::Success).target("mapping", id).details(details))
    })
}

/// What `apply` changed (or, for a dry run, would change).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub role: Option<(Role, Role)>,
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.role.is_none() && self.joined.is_empty() && self.left.is_empty()
    }
}

/// Brings `user` in line with `decision`: their role, and their memberships of managed groups
/// (memberships of other groups are the admins' business and stay). With `dry_run`, only says.
pub fn apply(
    conn: &mut Conn,
    now: i64,
    actor: &Actor,
    user: &User,
    decision: &Decision,
    dry_run: bool,
) -> AppResult<Changes> {
    let mut changes = Changes::default();
    if let Some(role) = decision.role
        && role != user.role
    {
        changes.role = Some((user.role, role));
        if !dry_run {
            match users::set_role(conn, now, actor, &user.username, role) {
                Ok(_) => {}
                // The last admin keeps the role until another admin exists.
                Err(e) if e.kind == ErrorKind::Conflict => {
                    tracing::warn!(user = %user.username, error = %e.message, "directory role not applied");
                    changes.role = None;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let have: BTreeSet<String> = groups::of_user(conn, user.id)?.into_iter().collect();
    for g in decision.groups.difference(&have) {
        changes.joined.push(g.clone());
        if !dry_run {
            groups::add_member(conn, now, actor, g, &user.username)?;
        }
    }
    for g in have.intersection(&decision.managed) {
        if !decision.groups.contains(g) {
            changes.left.push(g.clone());
            if !dry_run {
                groups::remove_member(conn, now, actor, g, &user.username)?;
            }
        }
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(group: &str, role: Option<Role>, ayush: Option<&str>) -> Rule {
        Rule { id: 0, directory_group: group.into(), role, group: ayush.map(str::to_string) }
    }

    #[test]
    fn the_highest_role_wins_and_groups_follow() {
        let rules = [
            rule("Staff", Some(Role::User), Some("everyone")),
            rule("IT-Admins", Some(Role::Admin), None),
            rule("Compliance", Some(Role::Auditor), None),
            rule("HR", None, Some("hr")),
        ];
        let held = |gs: &[&str]| gs.iter().map(|g| g.to_string()).collect::<BTreeSet<_>>();
        let d = decide(&rules, &held(&["staff", "it-admins", "compliance"]), None);
        assert_eq!(d.role, Some(Role::Admin));
        assert_eq!(d.groups, held(&["everyone"]));
        assert_eq!(d.managed, held(&["everyone", "hr"]));
        let d = decide(&rules, &held(&["HR"]), None);
        assert_eq!(d.role, None, "a group without a role grants no access on its own");
        assert_eq!(decide(&rules, &held(&["HR"]), Some(Role::User)).role, Some(Role::User));
        assert_eq!(
            decide(&rules, &held(&[]), None),
            Decision { managed: held(&["everyone", "hr"]), ..Default::default() }
        );
    }
}
