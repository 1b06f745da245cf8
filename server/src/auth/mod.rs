//! Users, groups, roles, sessions, local passwords, API tokens and the permission guard.
//! OIDC and LDAP join here.

pub mod accounts;
pub mod admission;
pub mod directory_sync;
pub mod groups;
pub mod keys;
pub mod ldap;
pub mod login;
pub mod mapping;
pub mod noise;
pub mod oidc;
pub mod password;
pub mod secret;
pub mod sessions;
pub mod sso;
pub mod throttle;
pub mod tokens;
pub mod users;

pub use crate::role::Role;
