//! The providers a running server talks to: built from their records on first use and kept,
//! so connections are pooled across requests. A record is read again at most every few
//! seconds (another replica may have changed it); a change made here takes effect at once.

use super::providers::{self, Provider};
use crate::error::{AppError, AppResult};
use crate::sealed::SealingKey;
use crate::store::Store;
use ayush_models::provider::{Gate, Kind, Remote, RemoteSpec};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a provider's record is trusted before it is read again.
const FRESH_FOR: Duration = Duration::from_secs(3);

struct Cached {
    /// Changes whenever anything the connection depends on does (the sealed key has a fresh
    /// nonce each time it is set).
    fingerprint: String,
    remote: Arc<Remote>,
    provider: Provider,
    read_at: Instant,
}

pub struct Remotes {
    key: Arc<SealingKey>,
    gate: Arc<dyn Gate>,
    tls: Arc<rustls::ClientConfig>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Remotes {
    pub fn new(key: SealingKey, gate: Arc<dyn Gate>, tls: Arc<rustls::ClientConfig>) -> Remotes {
        Remotes { key: Arc::new(key), gate, tls, cache: Mutex::new(HashMap::new()) }
    }

    pub fn key(&self) -> &SealingKey {
        &self.key
    }

    /// Drops what is cached for `name` (it was just changed or removed here).
    pub fn forget(&self, name: &str) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(name);
        }
    }

    fn cached(&self, name: &str) -> Option<(Arc<Remote>, Provider)> {
        let cache = self.cache.lock().ok()?;
        let c = cache.get(name)?;
        (c.read_at.elapsed() < FRESH_FOR).then(|| (c.remote.clone(), c.provider.clone()))
    }

    /// The provider called `name`, ready to connect.
    pub async fn get(&self, store: &Store, name: &str) -> AppResult<(Arc<Remote>, Provider)> {
        if let Some(hit) = self.cached(name) {
            return Ok(hit);
        }
        let n = name.to_string();
        let sealing = self.key.clone();
        let found = store.run(move |c| providers::unsealed(c, &sealing, &n)).await?;
        let p = &found.provider;
        let fingerprint = hex::encode(Sha256::digest(
            format!("{}\n{}\n{}\n{:?}", p.kind, p.base_url, p.timeout_secs, found.api_key).as_bytes(),
        ));
        let mut cache = self.cache.lock().map_err(|_| AppError::internal("provider cache poisoned"))?;
        if let Some(c) = cache.get_mut(name)
            && c.fingerprint == fingerprint
        {
            c.provider = found.provider;
            c.read_at = Instant::now();
            return Ok((c.remote.clone(), c.provider.clone()));
        }
        let spec = RemoteSpec {
            name: p.name.clone(),
            kind: Kind::parse(&p.kind).ok_or_else(|| {
                AppError::internal(format!("provider {name} has an unknown kind {:?}", p.kind))
            })?,
            base_url: p.base_url.clone(),
            api_key: found.api_key.clone(),
            timeout: Duration::from_secs(p.timeout_secs.max(1) as u64),
        };
        let remote = Arc::new(
            Remote::new(spec, self.gate.clone(), self.tls.clone())
                .map_err(|e| AppError::internal(format!("provider {name}: {e}")))?,
        );
        let provider = found.provider;
        cache.insert(
            name.to_string(),
            Cached {
                fingerprint,
                remote: remote.clone(),
                provider: provider.clone(),
                read_at: Instant::now(),
            },
        );
        Ok((remote, provider))
    }
}
