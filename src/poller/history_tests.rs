//! Tests written against the mutants that survived the first suite (issue
//! 17): the rate and forecast with varying speeds and realistic times, the
//! sample window, restarts, and the exact boundaries of each judgement.
//! Every time is an offset from a realistic epoch: with `created = 0` a sum
//! and a difference of times cannot be told apart.

use super::*;
use crate::model::FileCounts;

const MIN: i64 = 60_000;
const MB: u64 = 1_000_000;
/// 2025-11-24T16:00:00Z.
const T0: i64 = 1_764_000_000_000;

fn rules(stall_after_ms: i64) -> Rules {
    Rules {
        stall_after_ms,
        at_risk_horizon_ms: 12 * 60 * MIN,
    }
}

/// An active Vault session.
fn vault(id: &str, uploaded: u64, size: u64, created: i64, last: i64, expires: i64) -> Session {
    Session {
        id: id.into(),
        owner_id: "7".into(),
        owner_name: None,
        path: None,
        state: SessionState::Active,
        size: Some(size),
        uploaded,
        parts: 1,
        created: Some(created),
        expires: Some(expires),
        last_upload: Some(last),
        files: None,
    }
}

/// A deepset session (no bytes, no last upload: files are the progress).
fn deepset(
    id: &str,
    state: SessionState,
    files: FileCounts,
    created: i64,
    expires: i64,
) -> Session {
    Session {
        state,
        files: Some(files),
        size: None,
        last_upload: None,
        ..vault(id, 0, 0, created, created, expires)
    }
}

fn files(total: u64, finished: u64, failed: u64) -> FileCounts {
    FileCounts {
        total,
        finished,
        failed,
    }
}

/// The rate the code computes for `bytes` over `ms`, same operations in the
/// same order, so that equality is exact.
fn rate(bytes: u64, ms: i64) -> Option<f64> {
    Some(bytes as f64 * 1000.0 / ms as f64)
}

#[test]
fn len_is_empty_and_outcome_names() {
    let mut h = History::default();
    assert_eq!((h.len(), h.is_empty()), (0, true));
    let far = T0 + 1000 * MIN;
    h.update(
        &[
            vault("a", 0, MB, T0, T0, far),
            vault("b", 0, MB, T0, T0, far),
        ],
        T0,
        rules(30 * MIN),
    );
    assert_eq!((h.len(), h.is_empty()), (2, false));
    assert_eq!(Outcome::Completed.as_str(), "completed");
    assert_eq!(Outcome::Expired.as_str(), "expired");
}

#[test]
fn first_poll_rate_is_the_average_since_creation() {
    let r = rules(30 * MIN);
    // 300 MB in the 50 min between creation and the last part: 100 kB/s;
    // 700 MB left need 7000 s (116.7 min).
    let s = |expires| vault("a", 300 * MB, 1000 * MB, T0, T0 + 50 * MIN, expires);
    let now = T0 + 55 * MIN;
    let (j, _) = History::default().update(&[s(now + 100 * MIN)], now, r);
    assert_eq!(
        j[0],
        Judgement {
            stalled: false,
            awaiting_commit: false,
            at_risk: true,
            rate: Some(100_000.0),
        }
    );
    // 120 min left: enough at that rate, though the horizon rule alone
    // (12 h) would call it at risk.
    let (j, _) = History::default().update(&[s(now + 120 * MIN)], now, r);
    assert_eq!((j[0].rate, j[0].at_risk), (Some(100_000.0), false));
}

#[test]
fn no_average_without_elapsed_time_or_bytes() {
    let r = rules(30 * MIN);
    let now = T0 + 10 * MIN;
    let exp = now + 100 * 60 * MIN;
    for (s, why) in [
        (
            vault("a", 5 * MB, 10 * MB, T0, T0, exp),
            "last part at creation",
        ),
        (vault("b", 5 * MB, 10 * MB, T0, T0 - MIN, exp), "clock skew"),
        (
            vault("c", 0, 10 * MB, T0, T0 + 5 * MIN, exp),
            "nothing uploaded",
        ),
    ] {
        let (j, _) = History::default().update(&[s], now, r);
        assert_eq!(j[0].rate, None, "{why}");
        assert!(!j[0].at_risk, "{why}: expiry beyond the horizon");
    }
}

#[test]
fn rate_window_is_the_last_hour_at_varying_speeds() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    // Polls every 10 min, each 10 MB faster than the one before.
    let mut bytes = 0;
    let mut at = vec![0];
    for step in 1..=9u64 {
        bytes += 10 * MB * step;
        at.push(bytes);
    }
    let exp = T0 + 10_000 * MIN;
    for (i, &b) in at.iter().enumerate() {
        let now = T0 + 10 * MIN * i as i64;
        let (j, _) = h.update(
            &[vault("a", b, 10_000 * MB, T0 - 60 * MIN, now, exp)],
            now,
            r,
        );
        // The oldest sample in the window: at most 60 min old (exactly 60
        // is still in).
        let first = i.saturating_sub(6);
        let want = if i == 0 {
            // One sample: the average since creation, 0 bytes: none.
            None
        } else {
            rate(b - at[first], 10 * MIN * (i - first) as i64)
        };
        assert_eq!(j[0].rate, want, "poll {i}");
    }
}

#[test]
fn at_most_twelve_samples_are_kept() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    let exp = T0 + 10_000 * MIN;
    // A poll a minute, m² MB after m minutes (speeding up).
    for m in 0..=14u64 {
        let now = T0 + MIN * m as i64;
        let (j, _) = h.update(
            &[vault("a", m * m * MB, 10_000 * MB, T0 - MIN, now, exp)],
            now,
            r,
        );
        let first = m.saturating_sub(11);
        if m > 0 {
            assert_eq!(
                j[0].rate,
                rate((m * m - first * first) * MB, MIN * (m - first) as i64),
                "minute {m}"
            );
        }
    }
}

#[test]
fn two_samples_are_kept_however_old() {
    let mut h = History::default();
    let r = rules(300 * MIN);
    let exp = T0 + 10_000 * MIN;
    let created = T0 - 60 * MIN;
    h.update(&[vault("a", 0, 10_000 * MB, created, T0, exp)], T0, r);
    // Two hours later: the first sample is outside the window but it is
    // all there is to compare with.
    let now = T0 + 120 * MIN;
    let (j, _) = h.update(
        &[vault("a", 120 * MB, 10_000 * MB, created, now - MIN, exp)],
        now,
        r,
    );
    assert_eq!(j[0].rate, rate(120 * MB, 120 * MIN));
    // With a third sample the old one goes.
    let now = T0 + 130 * MIN;
    let (j, _) = h.update(
        &[vault("a", 130 * MB, 10_000 * MB, created, now, exp)],
        now,
        r,
    );
    assert_eq!(j[0].rate, rate(10 * MB, 10 * MIN));
}

#[test]
fn a_second_poll_at_the_same_time_adds_no_sample() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    let exp = T0 + 10_000 * MIN;
    h.update(&[vault("a", 0, 10_000 * MB, T0, T0, exp)], T0, r);
    let now = T0 + MIN;
    for _ in 0..14 {
        let (j, _) = h.update(&[vault("a", 10 * MB, 10_000 * MB, T0, now, exp)], now, r);
        assert_eq!(j[0].rate, rate(10 * MB, MIN));
    }
}

#[test]
fn no_growth_keeps_the_samples_and_zero_rate_uses_the_horizon() {
    let r = rules(30 * MIN); // horizon 12 h
    let created = T0 - 60 * MIN;
    let run = |expires: i64| {
        let mut h = History::default();
        h.update(
            &[vault("a", 0, 1000 * MB, created, created, expires)],
            T0,
            r,
        );
        let (j, _) = h.update(
            &[vault(
                "a",
                50 * MB,
                1000 * MB,
                created,
                T0 + 10 * MIN,
                expires,
            )],
            T0 + 10 * MIN,
            r,
        );
        assert_eq!(j[0].rate, rate(50 * MB, 10 * MIN));
        // No growth: the samples stay, the rate falls over 20 min.
        let (j, _) = h.update(
            &[vault(
                "a",
                50 * MB,
                1000 * MB,
                created,
                T0 + 10 * MIN,
                expires,
            )],
            T0 + 20 * MIN,
            r,
        );
        assert_eq!(j[0].rate, rate(50 * MB, 20 * MIN));
        // A session that stops: the last two samples, then only no-growth
        // samples in the window: rate 0.
        let mut last = j[0];
        for k in 3..=9 {
            let now = T0 + 10 * MIN * k;
            let (j, _) = h.update(
                &[vault(
                    "a",
                    50 * MB,
                    1000 * MB,
                    created,
                    T0 + 10 * MIN,
                    expires,
                )],
                now,
                r,
            );
            last = j[0];
        }
        last
    };
    // Two days left: zero growth is not "never finishes"; the horizon
    // decides.
    let j = run(T0 + 48 * 60 * MIN);
    assert_eq!(
        j,
        Judgement {
            stalled: true,
            awaiting_commit: false,
            at_risk: false,
            rate: Some(0.0),
        }
    );
    // 12 h minus 30 min left at the last poll.
    let j = run(T0 + 60 * MIN + 12 * 60 * MIN);
    assert_eq!((j.rate, j.at_risk), (Some(0.0), true));
}

#[test]
fn a_restart_with_bytes_going_down_starts_the_samples_over() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    let created = T0 - 60 * MIN;
    let exp = T0 + 10_000 * MIN;
    let poll = |h: &mut History, bytes: u64, last: i64, now: i64| {
        h.update(
            &[vault("a", bytes, 10_000 * MB, created, last, exp)],
            now,
            r,
        )
        .0[0]
            .rate
    };
    poll(&mut h, 50 * MB, T0, T0);
    assert_eq!(
        poll(&mut h, 100 * MB, T0 + 10 * MIN, T0 + 10 * MIN),
        rate(50 * MB, 10 * MIN)
    );
    // Down to 30 MB: one sample left, the average since creation decides.
    assert_eq!(
        poll(&mut h, 30 * MB, T0 + 19 * MIN, T0 + 20 * MIN),
        rate(30 * MB, 79 * MIN)
    );
    assert_eq!(
        poll(&mut h, 60 * MB, T0 + 30 * MIN, T0 + 30 * MIN),
        rate(30 * MB, 10 * MIN)
    );
}

#[test]
fn zero_byte_declared_session_is_not_awaiting_commit() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    // Created an hour ago, expiring within the horizon, nothing declared.
    let s = vault("z", 0, 0, T0 - 60 * MIN, T0 - 60 * MIN, T0 + 60 * MIN);
    let (j, _) = h.update(&[s], T0, r);
    assert_eq!(
        j[0],
        Judgement {
            stalled: true,
            awaiting_commit: false,
            at_risk: false,
            rate: None,
        }
    );
}

#[test]
fn at_risk_boundaries() {
    let r = rules(30 * MIN);
    let created = T0 - 60 * MIN;
    // Exactly 1 MB/s over the window; 600 MB left need 600 s.
    let judge = |left_ms: i64| {
        let mut h = History::default();
        let exp = T0 + MIN + left_ms;
        h.update(&[vault("a", 0, 660 * MB, created, created, exp)], T0, r);
        h.update(
            &[vault("a", 60 * MB, 660 * MB, created, T0 + MIN, exp)],
            T0 + MIN,
            r,
        )
        .0[0]
    };
    assert_eq!(judge(600_000).rate, Some(1_000_000.0));
    assert!(!judge(600_000).at_risk, "finishes exactly at expiry");
    assert!(judge(599_999).at_risk);
    // No rate: the horizon is inclusive.
    let no_rate = |expires: i64| {
        History::default()
            .update(&[vault("b", 0, 10 * MB, T0, T0, expires)], T0, r)
            .0[0]
    };
    assert!(no_rate(T0 + 12 * 60 * MIN).at_risk);
    assert!(!no_rate(T0 + 12 * 60 * MIN + 1).at_risk);
    // Expiring now or already past (still listed as active): nothing
    // left to risk, the expiry is what counts.
    assert!(!no_rate(T0).at_risk);
    assert!(!no_rate(T0 - MIN).at_risk);
    let with_rate = vault("c", 5 * MB, 10 * MB, created, T0 - MIN, T0 - MIN);
    let (j, _) = History::default().update(&[with_rate], T0, r);
    assert_eq!((j[0].rate.is_some(), j[0].at_risk), (true, false));
}

#[test]
fn closed_deepset_session_fully_ingested_is_never_stalled() {
    let mut h = History::default();
    let stall = 30 * MIN;
    let exp = T0 + 10_000 * MIN;
    // Created a day ago, first seen closed: the clock starts now, not at
    // creation.
    let created = T0 - 24 * 60 * MIN;
    let c = |f| deepset("d", SessionState::Closed, f, created, exp);
    let e = |f| deepset("e", SessionState::Closed, f, created, exp);
    let (j, _) = h.update(&[c(files(4, 1, 0)), e(files(4, 3, 1))], T0, rules(stall));
    assert_eq!((j[0].stalled, j[1].stalled), (false, false));
    // Idle for stall_after: the one with pending files stalls, the one
    // whose files are all ingested (or failed) does not.
    let (j, _) = h.update(
        &[c(files(4, 1, 0)), e(files(4, 3, 1))],
        T0 + stall,
        rules(stall),
    );
    assert_eq!((j[0].stalled, j[1].stalled), (true, false));
    assert_eq!(j[1], Judgement::default());
}

#[test]
fn open_deepset_session_stalls_exactly_stall_after_before_expiry() {
    let stall = 30 * MIN;
    let created = T0 - 60 * MIN;
    let judge = |expires: i64| {
        History::default()
            .update(
                &[deepset(
                    "d",
                    SessionState::Open,
                    files(2, 0, 0),
                    created,
                    expires,
                )],
                T0,
                rules(stall),
            )
            .0[0]
            .stalled
    };
    assert!(judge(T0 + stall));
    assert!(!judge(T0 + stall + 1));
}

#[test]
fn leaving_at_the_expiry_instant_counts_as_expired() {
    let r = rules(30 * MIN);
    let ended = |expires: i64| {
        let mut h = History::default();
        h.update(&[vault("a", 1, 10, T0, T0, expires)], T0, r);
        h.update(&[], T0 + 10 * MIN, r).1
    };
    assert_eq!(
        ended(T0 + 10 * MIN),
        vec![("7".to_string(), Outcome::Expired)]
    );
    assert_eq!(
        ended(T0 + 10 * MIN + 1),
        vec![("7".to_string(), Outcome::Completed)]
    );
}

#[test]
fn a_new_owner_is_the_one_counted_at_the_end() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    let exp = T0 + 100 * MIN;
    h.update(&[vault("a", 1, 10, T0, T0, exp)], T0, r);
    let moved = Session {
        owner_id: "8".into(),
        ..vault("a", 2, 10, T0, T0 + MIN, exp)
    };
    let (_, ended) = h.update(&[moved], T0 + MIN, r);
    assert!(ended.is_empty());
    let (_, ended) = h.update(&[], T0 + 2 * MIN, r);
    assert_eq!(ended, vec![("8".to_string(), Outcome::Completed)]);
}

#[test]
fn memory_is_given_back_only_after_a_wave_of_churn() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    let exp = T0 + 100 * MIN;
    let list = |n: usize| -> Vec<Session> {
        (0..n)
            .map(|i| vault(&format!("s{i}"), 1, 10, T0, T0, exp))
            .collect()
    };
    h.update(&list(500), T0, r);
    let full = h.sessions.capacity();
    assert!(full >= 500);
    // Removals may leave tombstones that count against capacity() (how
    // many depends on the random hash seed), so "kept" means at least
    // what the table had minus what was removed, and "given back" means
    // sized for what is left.
    // Down to half: kept, a dip is no reason to reallocate.
    h.update(&list(250), T0 + MIN, r);
    assert!(h.sessions.capacity() >= full - 250, "{full}");
    // Below a quarter: given back.
    h.update(&list(100), T0 + 2 * MIN, r);
    assert!(h.sessions.capacity() < 250, "{}", h.sessions.capacity());
    // Small maps (at most 64) are never shrunk.
    let mut small = History::default();
    small.update(&list(40), T0, r);
    let cap = small.sessions.capacity();
    assert!((40..=64).contains(&cap), "{cap}");
    small.update(&list(1), T0 + MIN, r);
    assert!(small.sessions.capacity() >= cap - 39, "{cap}");
}

#[test]
fn first_seen_ended_counts_only_if_created_since_the_last_poll() {
    let mut h = History::default();
    let r = rules(30 * MIN);
    h.update(&[], T0, r);
    let closed = |id: &str, owner: &str, created: i64| Session {
        owner_id: owner.into(),
        ..deepset(
            id,
            SessionState::Closed,
            files(1, 0, 0),
            created,
            T0 + 100 * MIN,
        )
    };
    let expired = Session {
        owner_id: "x".into(),
        state: SessionState::Expired,
        ..vault("v", 1, 10, T0 + MIN, T0 + MIN, T0 + 2 * MIN)
    };
    // Created exactly at the last poll counts; a millisecond before does
    // not (it may have been counted already).
    let (_, ended) = h.update(
        &[
            closed("q", "quick", T0),
            closed("o", "old", T0 - 1),
            expired,
        ],
        T0 + 10 * MIN,
        r,
    );
    assert_eq!(
        ended,
        vec![
            ("quick".to_string(), Outcome::Completed),
            ("x".to_string(), Outcome::Expired)
        ]
    );
}
