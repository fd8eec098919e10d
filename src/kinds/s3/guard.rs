//! The cost guard: S3 bills every LIST request, and seeing an upload's
//! progress takes a `ListParts` call per upload. So a bucket with thousands
//! of abandoned uploads must not be re-listed in full every poll:
//! - an upload seen for the first time is listed at once;
//! - one that moved (bytes or parts changed) within `stall_after` is listed
//!   every poll;
//! - a dormant one every `dormant_refresh`, each at its own phase so that
//!   the refreshes spread evenly over that period;
//! - never more than `max_list_parts_per_poll` per poll: the due uploads are
//!   served oldest due first, so none starves (round robin).
//!
//! Between listings an upload keeps the figures of its last listing.

use std::collections::HashMap;

use crate::model::UnixMillis;

/// What the last `ListParts` of an upload found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Sum of the part sizes.
    pub bytes: u64,
    /// Number of parts.
    pub parts: u64,
    /// Newest part's `LastModified`.
    pub last_part: Option<UnixMillis>,
}

#[derive(Debug, Clone)]
struct Entry {
    figures: Option<Figures>,
    /// When the figures last changed (or the upload was first seen).
    moved_at: UnixMillis,
    /// When it is next due for a listing.
    due_at: UnixMillis,
    /// Offset of its dormant refreshes within the refresh period.
    phase: i64,
}

/// The policy's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// An upload that moved this recently is re-listed every poll.
    pub stall_after_ms: i64,
    /// A dormant upload is re-listed this often.
    pub dormant_refresh_ms: i64,
    /// At most this many `ListParts` per poll (one per upload; an upload
    /// with more than 1,000 parts takes more pages).
    pub max_per_poll: usize,
}

/// The state of one bucket's uploads between polls.
#[derive(Debug, Default)]
pub struct Guard {
    entries: HashMap<String, Entry>,
}

impl Guard {
    /// Uploads known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no upload is known.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Which of `ids` (the uploads listed now) to list parts of at `now`,
    /// as indices into `ids`. Forgets uploads no longer listed.
    pub fn plan(&mut self, ids: &[&str], now: UnixMillis, policy: Policy) -> Vec<usize> {
        let listed: std::collections::HashSet<&str> = ids.iter().copied().collect();
        self.entries.retain(|id, _| listed.contains(id.as_str()));
        let mut due: Vec<(UnixMillis, usize)> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let e = self
                .entries
                .entry((*id).to_string())
                .or_insert_with(|| Entry {
                    figures: None,
                    moved_at: now,
                    due_at: UnixMillis::MIN,
                    phase: phase(id, policy.dormant_refresh_ms),
                });
            if e.due_at <= now {
                due.push((e.due_at, i));
            }
        }
        // Oldest due first: new uploads (due since forever), then those
        // waiting longest; ties in listing order.
        due.sort_unstable();
        due.truncate(policy.max_per_poll);
        let mut out: Vec<usize> = due.into_iter().map(|(_, i)| i).collect();
        out.sort_unstable();
        out
    }

    /// Records what the listing of `id` at `now` found, and when it is due
    /// next.
    pub fn record(&mut self, id: &str, figures: Figures, now: UnixMillis, policy: Policy) {
        let Some(e) = self.entries.get_mut(id) else {
            return;
        };
        if e.figures != Some(figures) {
            if e.figures.is_some() {
                e.moved_at = now;
            }
            e.figures = Some(figures);
        }
        let moving = now.saturating_sub(e.moved_at) < policy.stall_after_ms;
        e.due_at = if moving {
            now
        } else {
            next_dormant(now, e.phase, policy.dormant_refresh_ms)
        };
    }

    /// The figures of the last listing of `id`, if it was listed.
    pub fn figures(&self, id: &str) -> Option<Figures> {
        self.entries.get(id).and_then(|e| e.figures)
    }
}

/// A stable offset in `0..period` for an upload, from its id.
fn phase(id: &str, period: i64) -> i64 {
    use sha2::{Digest, Sha256};
    if period <= 0 {
        return 0;
    }
    let h = Sha256::digest(id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    (u64::from_be_bytes(b) % period as u64) as i64
}

/// The first time after `now` at the upload's phase of the period: dormant
/// uploads are refreshed at most once per period and spread over it.
fn next_dormant(now: UnixMillis, phase: i64, period: i64) -> UnixMillis {
    if period <= 0 {
        return now;
    }
    let base = now - now.rem_euclid(period) + phase;
    if base > now {
        base
    } else {
        base.saturating_add(period)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const POLICY: Policy = Policy {
        stall_after_ms: 30 * MIN,
        dormant_refresh_ms: 60 * MIN,
        max_per_poll: 1000,
    };

    fn f(bytes: u64) -> Figures {
        Figures {
            bytes,
            parts: bytes / 10,
            last_part: None,
        }
    }

    #[test]
    fn new_uploads_at_once_moving_ones_every_poll_dormant_ones_hourly() {
        let mut g = Guard::default();
        let ids = ["a", "b"];
        let mut t = 1_000 * MIN;
        assert_eq!(g.plan(&ids, t, POLICY), [0, 1]);
        g.record("a", f(10), t, POLICY);
        g.record("b", f(10), t, POLICY);
        // Both were first seen just now: "moving" until stall_after.
        t += MIN;
        assert_eq!(g.plan(&ids, t, POLICY), [0, 1]);
        g.record("a", f(20), t, POLICY);
        g.record("b", f(10), t, POLICY);
        // Past stall_after from their last change: a moved at t, b never.
        t += 30 * MIN;
        assert_eq!(g.plan(&ids, t, POLICY), [0, 1]);
        g.record("a", f(20), t, POLICY);
        g.record("b", f(10), t, POLICY);
        // b is dormant now (30 min since first seen); a moved 30 min ago.
        let mut b_listed = Vec::new();
        for _ in 0..120 {
            t += MIN;
            let plan = g.plan(&ids, t, POLICY);
            for &i in &plan {
                g.record(ids[i], if i == 0 { f(20) } else { f(10) }, t, POLICY);
            }
            if plan.contains(&1) {
                b_listed.push(t);
            }
            // a stopped moving too: it is dormant as well.
        }
        // Two hours of one-minute polls: b listed exactly twice, an hour apart.
        assert_eq!(b_listed.len(), 2, "{b_listed:?}");
        assert_eq!(b_listed[1] - b_listed[0], 60 * MIN);
        assert_eq!(g.figures("b"), Some(f(10)));
        assert_eq!(g.figures("nope"), None);
    }

    #[test]
    fn the_cap_serves_the_longest_waiting_first_and_none_starves() {
        let mut g = Guard::default();
        let ids: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let p = Policy {
            max_per_poll: 4,
            ..POLICY
        };
        let mut plans = Vec::new();
        let mut t = 0;
        for _ in 0..6 {
            t += MIN;
            let plan = g.plan(&refs, t, p);
            for &i in &plan {
                g.record(refs[i], f(i as u64), t, p);
            }
            plans.push(plan);
        }
        // Never more than the cap; new uploads first; then the longest
        // waiting (ties in listing order).
        assert_eq!(
            plans,
            [
                vec![0, 1, 2, 3],
                vec![4, 5, 6, 7],
                vec![0, 1, 8, 9],
                vec![2, 3, 4, 5],
                vec![0, 1, 6, 7],
                vec![2, 3, 8, 9],
            ]
        );
        // No upload waits more than ceil(10 / 4) = 3 polls.
        for i in 0..10 {
            let at: Vec<usize> = (0..6).filter(|&k| plans[k].contains(&i)).collect();
            assert!(at[0] < 3, "u{i}: {at:?}");
            assert!(at.windows(2).all(|w| w[1] - w[0] <= 3), "u{i}: {at:?}");
        }
    }

    #[test]
    fn dormant_refreshes_spread_over_the_period_and_forgotten_uploads_go() {
        let n = 600;
        let ids: Vec<String> = (0..n).map(|i| format!("upload-{i}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut g = Guard::default();
        let p = Policy {
            stall_after_ms: MIN,
            ..POLICY
        };
        let mut t = 0;
        for &i in &g.plan(&refs, t, p) {
            g.record(refs[i], f(1), t, p);
        }
        // Every one dormant after a minute; count listings per minute over
        // the next hour.
        t += 2 * MIN;
        for &i in &g.plan(&refs, t, p) {
            g.record(refs[i], f(1), t, p);
        }
        let mut per_minute = Vec::new();
        for _ in 0..60 {
            t += MIN;
            let plan = g.plan(&refs, t, p);
            for &i in &plan {
                g.record(refs[i], f(1), t, p);
            }
            per_minute.push(plan.len());
        }
        let total: usize = per_minute.iter().sum();
        assert_eq!(total, n, "each dormant upload once per hour");
        // Evenly: no minute takes more than 3x its share.
        assert!(per_minute.iter().all(|&k| k <= 30), "{per_minute:?}");
        g.plan(&refs[..1], t, p);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn an_upload_still_at_exactly_stall_after_is_dormant() {
        let mut g = Guard::default();
        assert!(g.is_empty());
        let t0 = 1_000 * MIN;
        assert_eq!(g.plan(&["a", "b", "c"], t0, POLICY), [0, 1, 2]);
        assert_eq!(g.len(), 3);
        assert!(!g.is_empty());
        for id in ["a", "b", "c"] {
            g.record(id, f(10), t0, POLICY);
        }
        // One minute short of stall_after since first seen: still every poll.
        let t = t0 + POLICY.stall_after_ms - MIN;
        assert_eq!(g.plan(&["a", "b", "c"], t, POLICY), [0, 1, 2]);
        g.record("a", f(10), t, POLICY);
        // Exactly stall_after after it was first seen and never moved: dormant,
        // so not due at the next poll.
        let t = t0 + POLICY.stall_after_ms;
        g.record("b", f(10), t, POLICY);
        assert!(!g.plan(&["b"], t + 1, POLICY).contains(&0));
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn next_dormant_is_after_now_at_the_phase() {
        assert_eq!(next_dormant(100, 30, 60), 150);
        assert_eq!(next_dormant(150, 30, 60), 210);
        assert_eq!(next_dormant(149, 30, 60), 150);
        assert_eq!(next_dormant(5, 0, 0), 5);
        for id in ["a", "b", "c"] {
            assert!((0..60).contains(&phase(id, 60)));
        }
        assert_eq!(phase("a", 0), 0);
    }
}
