//! Unauthenticated noise: sign-in answers nobody started here (an unknown, replayed or forged
//! OIDC `state`, one started in another browser), answers for providers that do not exist.
//! Anyone can send these as fast as they like, so they never count towards the sign-in
//! lockout (that would let anyone lock everyone out), and the audit log gets the first few of
//! each minute one by one and the rest as one `auth.noise` summary: what arrived, how many, from
//! where. The counts are per replica and bounded in memory.

use crate::audit::{Actor, Event, Outcome};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Events recorded one by one in each window; the rest are counted.
const RECORDED_PER_WINDOW: u32 = 20;
/// The length of a window, in seconds.
pub const WINDOW_SECS: i64 = 60;
/// Addresses counted one by one in a summary; beyond these, together.
const MAX_ADDRESSES: usize = 1000;

#[derive(Default)]
struct Window {
    started: i64,
    recorded: u32,
    /// What was counted and not recorded, by reason.
    suppressed: BTreeMap<&'static str, u64>,
    by_address: BTreeMap<String, u64>,
    other_addresses: u64,
}

#[derive(Default)]
pub struct Noise(Mutex<Window>);

/// One minute's noise that was counted rather than recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub started: i64,
    pub suppressed: BTreeMap<&'static str, u64>,
    /// The busiest addresses, most first.
    pub top_addresses: Vec<(String, u64)>,
    pub other_addresses: u64,
}

impl Summary {
    /// Writes the summary's `auth.noise` event.
    pub fn record(&self, conn: &mut crate::store::Conn, now: i64) -> crate::error::AppResult<()> {
        let system = Actor::system("noise");
        let total: u64 = self.suppressed.values().sum();
        let details = serde_json::json!({
            "window_start": self.started,
            "window_secs": WINDOW_SECS,
            "suppressed": total,
            "by_reason": self.suppressed,
            "top_addresses": self.top_addresses.iter().take(20).collect::<Vec<_>>(),
            "other_addresses": self.other_addresses,
        });
        crate::audit::record(conn, now, &Event::new(&system, "auth.noise", Outcome::Denied).details(details))
    }
}

impl Noise {
    /// Counts one piece of noise. `true`: record it as its own event; `false`: it is counted for
    /// the summary. Also returns the previous window's summary when this one starts a new window.
    pub fn admit(&self, now: i64, reason: &'static str, address: &str) -> (bool, Option<Summary>) {
        let Ok(mut w) = self.0.lock() else { return (false, None) };
        let summary = Self::roll(&mut w, now);
        if w.recorded < RECORDED_PER_WINDOW {
            w.recorded += 1;
            return (true, summary);
        }
        *w.suppressed.entry(reason).or_default() += 1;
        if w.by_address.len() < MAX_ADDRESSES || w.by_address.contains_key(address) {
            *w.by_address.entry(address.to_string()).or_default() += 1;
        } else {
            w.other_addresses += 1;
        }
        (false, summary)
    }

    /// The summary of a window that has ended and counted something, if any (housekeeping
    /// calls this so a quiet minute after a flood still gets its summary).
    pub fn flush(&self, now: i64) -> Option<Summary> {
        let Ok(mut w) = self.0.lock() else { return None };
        Self::roll(&mut w, now)
    }

    fn roll(w: &mut Window, now: i64) -> Option<Summary> {
        if now - w.started < WINDOW_SECS {
            return None;
        }
        let ended = std::mem::replace(w, Window { started: now, ..Default::default() });
        if ended.suppressed.is_empty() {
            return None;
        }
        let mut top: Vec<(String, u64)> = ended.by_address.into_iter().collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Some(Summary {
            started: ended.started,
            suppressed: ended.suppressed,
            top_addresses: top,
            other_addresses: ended.other_addresses,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_recorded_a_little_and_summarised() {
        let noise = Noise::default();
        let mut recorded = 0;
        for i in 0..1000 {
            let (record, summary) =
                noise.admit(100, "state_unknown_or_replayed", &format!("10.0.0.{}", i % 3));
            assert!(summary.is_none());
            recorded += u32::from(record);
        }
        assert_eq!(recorded, RECORDED_PER_WINDOW);
        assert!(noise.flush(100 + WINDOW_SECS - 1).is_none(), "the window is still open");
        let summary = noise.flush(100 + WINDOW_SECS).expect("a summary");
        assert_eq!(summary.suppressed["state_unknown_or_replayed"], 1000 - u64::from(RECORDED_PER_WINDOW));
        assert_eq!(summary.top_addresses.len(), 3);
        assert!(noise.flush(100 + 3 * WINDOW_SECS).is_none(), "a quiet window has nothing to say");
        let (record, _) = noise.admit(100 + 4 * WINDOW_SECS, "unknown_provider", "10.0.0.1");
        assert!(record, "a new window records again");
    }

    #[test]
    fn addresses_are_bounded() {
        let noise = Noise::default();
        for i in 0..(RECORDED_PER_WINDOW as usize + MAX_ADDRESSES + 500) {
            noise.admit(0, "state_not_bound", &format!("addr-{i}"));
        }
        let s = noise.flush(WINDOW_SECS).unwrap();
        assert_eq!(s.top_addresses.len(), MAX_ADDRESSES);
        assert_eq!(s.other_addresses, 500);
    }
}
