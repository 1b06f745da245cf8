//! What keeps one person from holding up everyone else: a lock per conversation (taken only
//! once the conversation is known to be the caller's, and waited for a bounded time), a bound
//! on how many answers or uploads one person may have running at once, and a memory budget for
//! all uploads being received together.

use crate::error::{AppError, AppResult, ErrorKind};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{Mutex as TurnMutex, OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// Entries kept before dead ones are swept out of the map.
const SWEEP_AT: usize = 1024;

/// One turn at a time per conversation, so a reply is stored before the next message is
/// answered. Entries are weak: a conversation nobody is answering holds no memory.
#[derive(Default)]
pub struct TurnLocks(Mutex<HashMap<i64, Weak<TurnMutex<()>>>>);

impl TurnLocks {
    /// Waits up to `wait` for the conversation's previous turn to finish.
    pub async fn lock(&self, conversation_id: i64, wait: Duration) -> AppResult<OwnedMutexGuard<()>> {
        let lock = {
            let mut map = self.0.lock().map_err(|_| AppError::internal("the turn locks are poisoned"))?;
            if map.len() >= SWEEP_AT {
                map.retain(|_, w| w.strong_count() > 0);
            }
            match map.get(&conversation_id).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(TurnMutex::new(()));
                    map.insert(conversation_id, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        tokio::time::timeout(wait, lock.lock_owned()).await.map_err(|_| {
            AppError::new(
                ErrorKind::Busy,
                "this conversation is still answering the previous message; wait for it or stop it",
            )
            .with_retry_after(5)
        })
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.0.lock().map(|m| m.values().filter(|w| w.strong_count() > 0).count()).unwrap_or(0)
    }
}

/// How many of something (answers being generated, files being uploaded) each person has
/// running, up to a limit.
pub struct PerPerson {
    limit: usize,
    /// What one more is refused with, given the limit.
    refusal: fn(usize) -> String,
    running: Arc<Mutex<HashMap<i64, usize>>>,
}

/// One running thing; dropping it frees the place.
pub struct Slot {
    user_id: i64,
    running: Arc<Mutex<HashMap<i64, usize>>>,
}

impl PerPerson {
    pub fn new(limit: usize, refusal: fn(usize) -> String) -> PerPerson {
        PerPerson { limit: limit.max(1), refusal, running: Arc::default() }
    }

    /// Answers one person may have generating at once, over the web chat and `/v1` together.
    pub fn generations(limit: usize) -> PerPerson {
        PerPerson::new(limit, |n| {
            format!("you already have {n} answers being written; wait for one to finish or stop it")
        })
    }

    /// Files one person may be sending at once.
    pub fn uploads(limit: usize) -> PerPerson {
        PerPerson::new(limit, |n| {
            format!("you are already sending {n} files; wait for one to arrive, then send the next")
        })
    }

    /// A place for one more of `user_id`'s, or 429 when they have `limit` running.
    pub fn start(&self, user_id: i64) -> AppResult<Slot> {
        let mut running = self.running.lock().map_err(|_| AppError::internal("the slots are poisoned"))?;
        let n = running.entry(user_id).or_default();
        if *n >= self.limit {
            return Err(AppError::new(ErrorKind::Busy, (self.refusal)(self.limit)).with_retry_after(5));
        }
        *n += 1;
        Ok(Slot { user_id, running: self.running.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(n) = running.get_mut(&self.user_id)
        {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user_id);
            }
        }
    }
}

/// The memory all uploads being received may hold together, reserved a MiB at a time as their
/// bytes arrive. A body that would pass it waits a moment for others to finish, then is refused
/// with 503: a burst of large uploads slows down, it does not exhaust the server's memory.
pub struct UploadMemory {
    mib: Arc<Semaphore>,
    wait: Duration,
}

/// Memory reserved for one upload, returned when dropped.
#[derive(Default)]
pub struct Reserved {
    permits: Option<OwnedSemaphorePermit>,
}

impl Reserved {
    /// Bytes this reservation covers.
    pub fn bytes(&self) -> u64 {
        self.permits.as_ref().map_or(0, |p| p.num_permits() as u64) << 20
    }
}

impl UploadMemory {
    pub fn new(mib: u64, wait: Duration) -> UploadMemory {
        let mib = usize::try_from(mib).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS);
        UploadMemory { mib: Arc::new(Semaphore::new(mib)), wait }
    }

    /// Grows `reserved` to cover `bytes`.
    pub async fn reserve(&self, reserved: &mut Reserved, bytes: u64) -> AppResult<()> {
        let have = reserved.bytes();
        if bytes <= have {
            return Ok(());
        }
        let more = u32::try_from((bytes - have).div_ceil(1 << 20)).unwrap_or(u32::MAX);
        let permit = tokio::time::timeout(self.wait, self.mib.clone().acquire_many_owned(more))
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                AppError::new(
                    ErrorKind::Unavailable,
                    "the server is receiving too many files at once; send this one again in a moment",
                )
                .with_retry_after(10)
            })?;
        match &mut reserved.permits {
            Some(held) => held.merge(permit),
            None => reserved.permits = Some(permit),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_conversation_waits_only_for_itself_and_only_so_long() {
        let locks = TurnLocks::default();
        let first = locks.lock(1, Duration::from_secs(1)).await.unwrap();
        // Another conversation (even one that shared a stripe before) is not held up.
        let other = locks.lock(65, Duration::from_millis(10)).await;
        assert!(other.is_ok());
        let waited = locks.lock(1, Duration::from_millis(20)).await.unwrap_err();
        assert_eq!(waited.kind, ErrorKind::Busy);
        drop(first);
        drop(other);
        assert!(locks.lock(1, Duration::from_millis(20)).await.is_ok());
        assert_eq!(locks.entries(), 0, "nothing is kept for idle conversations");
    }

    #[test]
    fn each_person_has_their_own_places() {
        let g = PerPerson::generations(2);
        let a1 = g.start(1).unwrap();
        let _a2 = g.start(1).unwrap();
        let refused = g.start(1).err().unwrap();
        assert_eq!(refused.kind, ErrorKind::Busy);
        assert!(refused.message.contains("2 answers"), "{}", refused.message);
        let _b = g.start(2).expect("others are not held up");
        drop(a1);
        assert!(g.start(1).is_ok(), "a finished answer frees its place");
    }

    #[tokio::test]
    async fn uploads_share_one_memory_budget() {
        let memory = UploadMemory::new(3, Duration::from_millis(20));
        let mut first = Reserved::default();
        memory.reserve(&mut first, 1).await.unwrap();
        assert_eq!(first.bytes(), 1 << 20, "reserved a MiB at a time");
        memory.reserve(&mut first, (2 << 20) + 1).await.unwrap();
        assert_eq!(first.bytes(), 3 << 20);
        let mut second = Reserved::default();
        let refused = memory.reserve(&mut second, 10).await.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unavailable);
        drop(first);
        memory.reserve(&mut second, 3 << 20).await.expect("returned when the first is done");
    }
}
