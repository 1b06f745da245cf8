//! The journal written through the store's connections (the audit log), as the store sees it:
//! something every connection carries, asked to catch up once the schema is current, and
//! handed back to the module that writes it. `audit::Chain` is the one implementation; the
//! trait is what keeps `store` from importing `audit` while `audit` writes through `store`.

use super::Conn;
use std::any::Any;

pub trait Journal: Any + Send + Sync + std::fmt::Debug {
    /// Brings rows written before the journal existed into it; answers how many.
    fn catch_up(&self, conn: &mut Conn) -> Result<usize, String>;

    /// Entries that could not be written since start-up, for `/metrics` and the health page.
    fn write_failures(&self) -> u64;
}
