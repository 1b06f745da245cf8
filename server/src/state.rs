use crate::catalog::Catalog;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::http::metrics::Metrics;
use crate::store::Store;
use crate::theme::Theme;
use std::sync::Arc;

/// Everything a request handler may use, passed explicitly (no global singletons).
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    pub theme: Arc<Theme>,
    pub metrics: Arc<Metrics>,
    pub catalog: Arc<Catalog>,
    pub turns: Arc<crate::chat::turn::TurnLocks>,
    pub audit: Arc<crate::audit::Ledger>,
}
