//! Brute-force protection: after `lockout_max_failures` failed sign-ins for one account, or ten
//! times that from one address, within `lockout_window_mins`, further attempts are refused until
//! the window has passed. Failures are kept in the database so every replica sees them.

use crate::config::AuthConfig;
use crate::error::AppResult;
use crate::store::Conn;
use crate::store::schema::login_failures;
use diesel::prelude::*;

/// One address may fail this many times more often than one account: a NAT or proxy puts many
/// honest people behind one address.
const IP_FACTOR: i64 = 10;

/// The account failures are counted against: the name as typed, compared as directories
/// compare names, so `Bob`, `BOB` and ` bob ` share one count. With Active Directory,
/// `CORP\bob` and `bob@corp.example` are bob too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account(String);

impl Account {
    pub fn new(typed: &str, active_directory: bool) -> Account {
        let mut name = typed.trim().to_lowercase();
        if active_directory {
            if let Some((_, user)) = name.split_once('\\') {
                name = user.to_string();
            }
            if let Some((user, _)) = name.split_once('@') {
                name = user.to_string();
            }
        }
        Account(name.chars().take(128).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `Some(seconds until attempts are allowed again)` when locked out.
pub fn locked_for(
    conn: &mut Conn,
    now: i64,
    cfg: &AuthConfig,
    account: &Account,
    ip: &str,
) -> AppResult<Option<u64>> {
    let username = account.as_str();
    let window = (cfg.lockout_window_mins as i64) * 60;
    let since = now - window;
    let max = i64::from(cfg.lockout_max_failures);
    for (limit, by_account) in [(max, true), (max * IP_FACTOR, false)] {
        let recent = login_failures::table.filter(login_failures::at.gt(since));
        let times: Vec<i64> = if by_account {
            conn.load(
                (recent.filter(login_failures::username.eq(username)).select(login_failures::at))
                    .order(login_failures::at.desc())
                    .limit(limit),
            )?
        } else {
            conn.load(
                (recent.filter(login_failures::ip.eq(ip)).select(login_failures::at))
                    .order(login_failures::at.desc())
                    .limit(limit),
            )?
        };
        if times.len() as i64 >= limit {
            // Allowed again once the oldest of the last `limit` failures leaves the window.
            let oldest = times.last().copied().unwrap_or(now);
            return Ok(Some((oldest + window - now).max(1) as u64));
        }
    }
    Ok(None)
}

pub fn record_failure(conn: &mut Conn, now: i64, account: &Account, ip: &str) -> AppResult<()> {
    conn.execute(diesel::insert_into(login_failures::table).values((
        login_failures::username.eq(account.as_str()),
        login_failures::ip.eq(ip),
        login_failures::at.eq(now),
    )))?;
    Ok(())
}

/// A successful sign-in clears the account's failures (not the address's).
pub fn clear_account(conn: &mut Conn, account: &Account) -> AppResult<()> {
    conn.execute(diesel::delete(
        login_failures::table.filter(login_failures::username.eq(account.as_str())),
    ))?;
    Ok(())
}

/// Drops failures older than the window; run periodically.
pub fn purge(conn: &mut Conn, now: i64, cfg: &AuthConfig) -> AppResult<usize> {
    let since = now - (cfg.lockout_window_mins as i64) * 60;
    Ok(conn.execute(diesel::delete(login_failures::table.filter(login_failures::at.le(since))))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_however_its_name_is_typed() {
        let bob = Account::new("bob", false);
        for typed in ["Bob", "BOB", " bob\t"] {
            assert_eq!(Account::new(typed, false), bob, "{typed:?}");
        }
        assert_ne!(Account::new("bob@corp.example", false), bob, "OpenLDAP uids may hold '@'");
        for typed in ["CORP\\bob", "bob@corp.example", "BOB@CORP.EXAMPLE", "corp\\Bob"] {
            assert_eq!(Account::new(typed, true), bob, "Active Directory: {typed:?}");
        }
    }
}
