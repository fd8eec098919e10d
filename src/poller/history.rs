//! What the poller remembers between polls of one target: for each listed
//! session its bytes and when it last made progress, so that stalls can be
//! told apart from slow uploads and sessions that leave the list can be
//! counted as completed or expired. Only sessions in the latest list are
//! kept, so memory follows the number of live sessions.

use std::collections::{HashMap, VecDeque};

use crate::model::{Session, SessionState, UnixMillis};

/// How sessions are judged; from the target's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// No progress for this long = stalled.
    pub stall_after_ms: i64,
    /// A session with bytes missing and no measurable progress is at risk
    /// once its expiry is this close.
    pub at_risk_horizon_ms: i64,
}

/// How far back upload-rate samples go.
const RATE_WINDOW_MS: i64 = 60 * 60 * 1000;
/// Samples kept per session at most (memory stays flat however long a
/// session lives).
const MAX_SAMPLES: usize = 12;
/// Sessions remembered per target at most, whatever the upstream lists (a
/// workspace where sessions are created and closed in a loop lists every
/// one until it expires). Sessions beyond it are judged as if first seen
/// on every poll.
pub const MAX_TRACKED: usize = 50_000;

/// How a session stopped being live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Before its expiry: committed or aborted (Vault), closed (deepset).
    Completed,
    /// Its expiry passed first (purged with its parts, or still listed).
    Expired,
}

impl Outcome {
    /// The `outcome` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone)]
struct Tracked {
    owner_id: String,
    state: SessionState,
    /// [`Session::progress`] when last seen.
    progress: u64,
    /// Last time the session was known to make progress.
    progress_at: UnixMillis,
    expires: Option<UnixMillis>,
    /// (time, bytes uploaded) of recent polls, oldest first (Vault).
    samples: VecDeque<(UnixMillis, u64)>,
    /// [`History::epoch`] of the last poll that listed the session.
    seen: u64,
}

/// Per-session judgement of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Judgement {
    /// Not moving when it should (see [`History::update`]).
    pub stalled: bool,
    /// Every declared byte uploaded, not committed (Vault).
    pub awaiting_commit: bool,
    /// Will not finish before it expires at the observed rate (Vault).
    pub at_risk: bool,
    /// Observed upload rate in bytes per second, if measurable (Vault).
    pub rate: Option<f64>,
}

/// The history of one target.
#[derive(Debug, Default)]
pub struct History {
    sessions: HashMap<String, Tracked>,
    /// False until the first successful poll: before it, nothing can be
    /// said to have ended.
    primed: bool,
    /// Counts updates; marks which sessions the latest list had.
    epoch: u64,
    /// `now` of the latest update: a session created after it cannot have
    /// been seen yet.
    last_update: UnixMillis,
    /// The list went past [`MAX_TRACKED`] (warned once).
    over_cap: bool,
}

impl History {
    /// Sessions currently remembered.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Takes in a successful poll made at `now`: returns a judgement per
    /// session (same order as `sessions`) and the sessions that ended.
    ///
    /// Stalled means no progress for `stall_after` and:
    /// - Vault, active: bytes still missing;
    /// - deepset, open: expiring within `stall_after` (files uploaded to an
    ///   open session are lost unless it is closed in time);
    /// - deepset, closed: files still pending ingestion.
    ///
    /// A session ends when it stops being live (Vault active, deepset open),
    /// and is counted once, whether or not it is still listed: by
    /// disappearing from the list (completed before its expiry, expired
    /// after it), by closing (completed), by expiring while listed
    /// (expired), or by first appearing already closed or expired when it
    /// was created since the last poll.
    pub fn update(
        &mut self,
        sessions: &[Session],
        now: UnixMillis,
        rules: Rules,
    ) -> (Vec<Judgement>, Vec<(String, Outcome)>) {
        // Updated in place: a session seen before costs no allocation (this
        // runs for every session of every target on every poll).
        self.epoch = self.epoch.wrapping_add(1);
        let epoch = self.epoch;
        let stall_after_ms = rules.stall_after_ms;
        let mut judgements = Vec::with_capacity(sessions.len());
        let mut ended = Vec::new();
        let mut untracked;
        for s in sessions {
            let progress = s.progress();
            let t = match self.sessions.get_mut(s.id.as_str()) {
                Some(p) => {
                    let progress_at = if p.state != s.state {
                        // A new state (e.g. just closed) starts a new clock.
                        now
                    } else if progress > p.progress {
                        // Grew since the last poll: progress happened by
                        // now, even if the upstream's last_uploaded_date
                        // lags.
                        now.max(s.last_upload.unwrap_or(now))
                    } else {
                        p.progress_at.max(s.last_upload.unwrap_or(i64::MIN))
                    };
                    if p.state.is_live() && !s.is_live() && self.primed {
                        ended.push((s.owner_id.clone(), ended_as(s.state)));
                    }
                    if p.owner_id != s.owner_id {
                        p.owner_id.clone_from(&s.owner_id);
                    }
                    p.state = s.state;
                    p.progress = progress;
                    p.progress_at = progress_at;
                    p.expires = s.expires;
                    p.seen = epoch;
                    p
                }
                None => {
                    // Created and ended between two polls (a small deepset
                    // upload closes within seconds): it ended all the same.
                    // Only if created since the last poll, so that a session
                    // that was forgotten and is listed again (an old closed
                    // one) is not counted a second time.
                    if self.primed
                        && !s.is_live()
                        && s.created.is_some_and(|c| c >= self.last_update)
                    {
                        ended.push((s.owner_id.clone(), ended_as(s.state)));
                    }
                    let progress_at = if s.state == SessionState::Closed {
                        // First sight of a closed session: its closing time
                        // is unknown, so start counting now.
                        now
                    } else {
                        // Otherwise trust the upstream's dates.
                        s.last_upload.or(s.created).unwrap_or(now)
                    };
                    let fresh = Tracked {
                        owner_id: s.owner_id.clone(),
                        state: s.state,
                        progress,
                        progress_at,
                        expires: s.expires,
                        samples: VecDeque::new(),
                        seen: epoch,
                    };
                    if self.sessions.len() < MAX_TRACKED {
                        self.sessions.entry(s.id.clone()).or_insert(fresh)
                    } else {
                        if !self.over_cap {
                            self.over_cap = true;
                            tracing::warn!(
                                listed = sessions.len(),
                                "the upstream lists more than {MAX_TRACKED} sessions; those beyond \
                                 are judged without history: their end is not counted, and a \
                                 stall is seen only from the upstream's own last-upload time"
                            );
                        }
                        untracked = fresh;
                        &mut untracked
                    }
                }
            };
            let idle = now.saturating_sub(t.progress_at) >= stall_after_ms;
            if s.state == SessionState::Active {
                record_sample(&mut t.samples, now, s.uploaded);
            }
            let judgement = match (s.state, s.files) {
                (SessionState::Active, _) => {
                    let complete = s.size.is_some_and(|size| size > 0 && s.uploaded >= size);
                    let rate = upload_rate(&t.samples, s);
                    Judgement {
                        stalled: idle && !complete,
                        awaiting_commit: complete,
                        at_risk: !complete && at_risk(s, rate, now, rules.at_risk_horizon_ms),
                        rate,
                    }
                }
                (SessionState::Open, _) => Judgement {
                    stalled: idle
                        && s.expires
                            .is_some_and(|e| e.saturating_sub(now) <= stall_after_ms),
                    ..Judgement::default()
                },
                (SessionState::Closed, Some(f)) => Judgement {
                    stalled: idle && f.pending() > 0,
                    ..Judgement::default()
                },
                _ => Judgement::default(),
            };
            judgements.push(judgement);
        }
        // Sessions not in this list are forgotten; live ones have ended.
        let primed = self.primed;
        self.sessions.retain(|_, t| {
            if t.seen == epoch {
                return true;
            }
            if primed && t.state.is_live() {
                let outcome = match t.expires {
                    Some(e) if e <= now => Outcome::Expired,
                    _ => Outcome::Completed,
                };
                ended.push((std::mem::take(&mut t.owner_id), outcome));
            }
            false
        });
        // After a wave of churn, give the memory back.
        if self.sessions.capacity() > 64 && self.sessions.capacity() > 4 * self.sessions.len() {
            self.sessions.shrink_to_fit();
        }
        ended.sort();
        self.primed = true;
        self.last_update = now;
        (judgements, ended)
    }
}

#[cfg(test)]
mod cap_tests {
    use super::*;

    #[test]
    fn remembered_sessions_are_bounded_whatever_is_listed() {
        let rules = Rules {
            stall_after_ms: 60_000,
            at_risk_horizon_ms: 0,
        };
        let session = |i: usize| Session {
            id: format!("s{i}"),
            owner_id: "o".into(),
            owner_name: None,
            path: None,
            state: SessionState::Closed,
            size: None,
            uploaded: 0,
            parts: 0,
            created: Some(0),
            expires: Some(i64::MAX),
            last_upload: None,
            files: None,
        };
        let mut h = History::default();
        let listed: Vec<Session> = (0..MAX_TRACKED + 100).map(session).collect();
        let (judgements, _) = h.update(&listed, 1_000, rules);
        assert_eq!(judgements.len(), listed.len());
        assert_eq!(h.len(), MAX_TRACKED);
        let (_, ended) = h.update(&listed, 2_000, rules);
        assert_eq!(h.len(), MAX_TRACKED);
        assert!(ended.is_empty());
    }

    #[test]
    fn beyond_the_cap_a_stall_is_judged_from_the_last_upload_and_an_end_is_not_counted() {
        let rules = Rules {
            stall_after_ms: 60_000,
            at_risk_horizon_ms: 0,
        };
        let now = 10_000_000;
        let active = |i: usize, last: i64| Session {
            id: format!("s{i}"),
            owner_id: "o".into(),
            owner_name: None,
            path: None,
            state: SessionState::Active,
            size: None,
            uploaded: 1,
            parts: 1,
            created: Some(0),
            expires: None,
            last_upload: Some(last),
            files: None,
        };
        let mut listed: Vec<Session> = (0..MAX_TRACKED).map(|i| active(i, now)).collect();
        // Two beyond the cap: one idle for longer than stall_after, one not.
        listed.push(active(MAX_TRACKED, now - 60_000));
        listed.push(active(MAX_TRACKED + 1, now - 59_999));
        let mut h = History::default();
        let (j, _) = h.update(&listed, now, rules);
        assert_eq!(h.len(), MAX_TRACKED);
        assert!(j[MAX_TRACKED].stalled);
        assert!(!j[MAX_TRACKED + 1].stalled);
        assert!(!j[0].stalled);
        // The untracked ones leave the list: not counted; a tracked one is.
        listed.truncate(MAX_TRACKED - 1);
        let (_, ended) = h.update(&listed, now + 1_000, rules);
        assert_eq!(ended, vec![("o".to_string(), Outcome::Completed)]);
    }
}

/// How a session listed in a state that is not live ended.
fn ended_as(state: SessionState) -> Outcome {
    match state {
        SessionState::Closed => Outcome::Completed,
        _ => Outcome::Expired,
    }
}

/// Adds a (time, bytes) sample, keeping the window and the count bounded.
fn record_sample(samples: &mut VecDeque<(UnixMillis, u64)>, now: UnixMillis, bytes: u64) {
    if samples.back().is_some_and(|(t, _)| *t >= now) {
        return;
    }
    // Bytes that went down mean the upstream restarted the count: start over.
    if samples.back().is_some_and(|(_, b)| *b > bytes) {
        samples.clear();
    }
    samples.push_back((now, bytes));
    while samples.len() > 2
        && samples
            .front()
            .is_some_and(|(t, _)| now - *t > RATE_WINDOW_MS)
    {
        samples.pop_front();
    }
    while samples.len() > MAX_SAMPLES {
        samples.pop_front();
    }
}

/// Bytes per second over the recent samples, robust to irregular poll
/// times (it divides by the time actually elapsed). Without two samples
/// (first poll after a start) it falls back to the average since creation.
fn upload_rate(samples: &VecDeque<(UnixMillis, u64)>, s: &Session) -> Option<f64> {
    if let (Some(&(t0, b0)), Some(&(t1, b1))) = (samples.front(), samples.back()) {
        if t1 > t0 {
            return Some(b1.saturating_sub(b0) as f64 * 1000.0 / (t1 - t0) as f64);
        }
    }
    let (created, last) = (s.created?, s.last_upload?);
    (last > created && s.uploaded > 0).then(|| s.uploaded as f64 * 1000.0 / (last - created) as f64)
}

/// At the observed rate the remaining bytes need longer than is left
/// before expiry; with no progress at all, the expiry is within the horizon.
fn at_risk(s: &Session, rate: Option<f64>, now: UnixMillis, horizon_ms: i64) -> bool {
    let (Some(size), Some(expires)) = (s.size, s.expires) else {
        return false;
    };
    let remaining = size.saturating_sub(s.uploaded);
    let left_ms = expires.saturating_sub(now);
    if remaining == 0 || left_ms <= 0 {
        return false;
    }
    match rate {
        Some(r) if r > 0.0 => remaining as f64 / r * 1000.0 > left_ms as f64,
        _ => left_ms <= horizon_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileCounts;

    const MIN: i64 = 60_000;

    fn rules(stall_after_ms: i64) -> Rules {
        Rules {
            stall_after_ms,
            at_risk_horizon_ms: 12 * 60 * MIN,
        }
    }

    fn session(id: &str, uploaded: u64, last_upload: Option<i64>, expires: i64) -> Session {
        Session {
            id: id.into(),
            owner_id: "7".into(),
            owner_name: None,
            path: None,
            state: SessionState::Active,
            size: Some(100),
            uploaded,
            parts: 1,
            created: Some(0),
            expires: Some(expires),
            last_upload,
            files: None,
        }
    }

    #[test]
    fn stalled_when_no_growth_and_old_last_upload() {
        let mut h = History::default();
        let stall = 30 * MIN;
        // Last part 40 minutes ago: stalled on first sight.
        let (j, _) = h.update(
            &[session("a", 10, Some(0), 1000 * MIN)],
            40 * MIN,
            rules(stall),
        );
        assert!(j[0].stalled);
        // Bytes grew (last_uploaded_date lagging): not stalled.
        let (j, _) = h.update(
            &[session("a", 20, Some(0), 1000 * MIN)],
            41 * MIN,
            rules(stall),
        );
        assert!(!j[0].stalled);
        // No growth for 29 more minutes: still fine; at 30: stalled.
        let (j, _) = h.update(
            &[session("a", 20, Some(0), 1000 * MIN)],
            70 * MIN,
            rules(stall),
        );
        assert!(!j[0].stalled);
        let (j, _) = h.update(
            &[session("a", 20, Some(0), 1000 * MIN)],
            71 * MIN,
            rules(stall),
        );
        assert!(j[0].stalled);
    }

    #[test]
    fn recent_upload_is_not_stalled_and_complete_awaits_commit() {
        let mut h = History::default();
        let (j, _) = h.update(
            &[session("a", 10, Some(35 * MIN), 1000 * MIN)],
            40 * MIN,
            rules(30 * MIN),
        );
        assert!(!j[0].stalled && !j[0].awaiting_commit && !j[0].at_risk);
        let (j, _) = h.update(
            &[session("b", 100, Some(0), 1000 * MIN)],
            40 * MIN,
            rules(30 * MIN),
        );
        assert_eq!(
            j[0],
            Judgement {
                stalled: false,
                awaiting_commit: true,
                at_risk: false,
                rate: None,
            }
        );
        let mut expired = session("c", 10, Some(0), 10 * MIN);
        expired.state = SessionState::Expired;
        let (j, _) = h.update(&[expired], 40 * MIN, rules(30 * MIN));
        assert_eq!(
            j[0],
            Judgement::default(),
            "expired sessions are not 'stalled'"
        );
    }

    fn deepset(id: &str, state: SessionState, files: FileCounts, expires: i64) -> Session {
        Session {
            state,
            files: Some(files),
            size: None,
            last_upload: None,
            ..session(id, 0, None, expires)
        }
    }

    #[test]
    fn deepset_open_stalls_near_expiry_and_closing_ends_it() {
        let mut h = History::default();
        let stall = 30 * MIN;
        let files = |total| FileCounts {
            total,
            finished: 0,
            failed: 0,
        };
        let open = |n, exp| deepset("d", SessionState::Open, files(n), exp);
        // Created at 0, idle, expiring in 2 h: not stalled yet.
        let (j, _) = h.update(&[open(3, 160 * MIN)], 40 * MIN, rules(stall));
        assert!(!j[0].stalled);
        // Near expiry and still no new file: stalled.
        let (j, _) = h.update(&[open(3, 160 * MIN)], 140 * MIN, rules(stall));
        assert!(j[0].stalled);
        // A new file: moving again.
        let (j, _) = h.update(&[open(4, 160 * MIN)], 141 * MIN, rules(stall));
        assert!(!j[0].stalled);
        // Closed: counted as completed once; ingestion gets its own clock.
        let closed = FileCounts {
            total: 4,
            finished: 1,
            failed: 0,
        };
        let c = deepset("d", SessionState::Closed, closed, 160 * MIN);
        let (j, ended) = h.update(std::slice::from_ref(&c), 142 * MIN, rules(stall));
        assert_eq!(ended, vec![("7".to_string(), Outcome::Completed)]);
        assert!(!j[0].stalled);
        let (j, ended) = h.update(&[c], 172 * MIN, rules(stall));
        assert!(ended.is_empty());
        assert!(j[0].stalled, "ingestion has not moved for 30 min");
        let done = FileCounts {
            total: 4,
            finished: 3,
            failed: 1,
        };
        let (j, _) = h.update(
            &[deepset("d", SessionState::Closed, done, 160 * MIN)],
            173 * MIN,
            rules(stall),
        );
        assert!(!j[0].stalled);
    }

    #[test]
    fn expiring_while_listed_counts_once() {
        let mut h = History::default();
        h.update(&[session("v", 1, None, 10 * MIN)], 5 * MIN, rules(30 * MIN));
        let mut expired = session("v", 1, None, 10 * MIN);
        expired.state = SessionState::Expired;
        let (_, ended) = h.update(std::slice::from_ref(&expired), 11 * MIN, rules(30 * MIN));
        assert_eq!(ended, vec![("7".to_string(), Outcome::Expired)]);
        let (_, ended) = h.update(&[expired], 12 * MIN, rules(30 * MIN));
        assert!(ended.is_empty());
        let (_, ended) = h.update(&[], 13 * MIN, rules(30 * MIN));
        assert!(
            ended.is_empty(),
            "purge of an already expired session is not counted again"
        );
    }

    #[test]
    fn created_and_ended_between_polls_counts_once_old_ones_never() {
        let mut h = History::default();
        let r = rules(30 * MIN);
        h.update(&[], 10 * MIN, r);
        let files = FileCounts {
            total: 1,
            finished: 0,
            failed: 0,
        };
        // Created at 12 min, closed before the poll at 20 min.
        let mut quick = deepset("q", SessionState::Closed, files, 100 * MIN);
        quick.created = Some(12 * MIN);
        // Created long before the last poll: listed again after being
        // forgotten, it must not count (it was, or could have been, before).
        let mut old = deepset("o", SessionState::Closed, files, 100 * MIN);
        old.created = Some(MIN);
        let (_, ended) = h.update(&[quick.clone(), old.clone()], 20 * MIN, r);
        assert_eq!(ended, vec![("7".to_string(), Outcome::Completed)]);
        let (_, ended) = h.update(&[quick, old], 30 * MIN, r);
        assert!(ended.is_empty(), "{ended:?}");
    }

    const MB: u64 = 1_000_000;

    fn vault(uploaded: u64, size: u64, created: i64, last: i64, expires: i64) -> Session {
        Session {
            size: Some(size),
            created: Some(created),
            ..session("r", uploaded, Some(last), expires)
        }
    }

    #[test]
    fn at_risk_uses_the_observed_rate() {
        let mut h = History::default();
        let r = rules(30 * MIN);
        // 1000 MB to go, 100 min left.
        h.update(&[vault(0, 1000 * MB, 0, 0, 110 * MIN)], 10 * MIN, r);
        // 5 MB/min observed (50 MB in 10 min): needs 190 min: at risk.
        let (j, _) = h.update(
            &[vault(50 * MB, 1000 * MB, 0, 20 * MIN, 110 * MIN)],
            20 * MIN,
            r,
        );
        assert_eq!(j[0].rate, Some(50.0 * MB as f64 / 600.0));
        assert!(j[0].at_risk);
        // Now 500 MB more in 10 min: over the window (20 min) 27.5 MB/min,
        // 450 MB left need ~16 min, 80 min left: safe.
        let (j, _) = h.update(
            &[vault(550 * MB, 1000 * MB, 0, 30 * MIN, 110 * MIN)],
            30 * MIN,
            r,
        );
        assert!(!j[0].at_risk, "{:?}", j[0]);
    }

    #[test]
    fn rate_follows_elapsed_time_not_poll_count() {
        let mut h = History::default();
        let r = rules(30 * MIN);
        h.update(&[vault(0, 10_000 * MB, 0, 0, 1000 * MIN)], 0, r);
        h.update(&[vault(10 * MB, 10_000 * MB, 0, 1, 1000 * MIN)], MIN, r);
        // A late poll: 7 minutes later, 70 MB more. 80 MB in 8 min overall.
        let (j, _) = h.update(&[vault(80 * MB, 10_000 * MB, 0, 2, 1000 * MIN)], 8 * MIN, r);
        assert_eq!(j[0].rate, Some(80.0 * MB as f64 / 480.0));
    }

    #[test]
    fn after_a_restart_the_average_since_creation_decides() {
        let r = rules(30 * MIN);
        // 100 MB in the 100 min since creation: 1 MB/min; 900 MB left, 60 min to go.
        let (j, _) = History::default().update(
            &[vault(100 * MB, 1000 * MB, 0, 100 * MIN, 160 * MIN)],
            100 * MIN,
            r,
        );
        assert!(j[0].at_risk);
        // Same speed with 2000 min to go: fine.
        let (j, _) = History::default().update(
            &[vault(100 * MB, 1000 * MB, 0, 100 * MIN, 2100 * MIN)],
            100 * MIN,
            r,
        );
        assert!(!j[0].at_risk);
    }

    #[test]
    fn no_progress_at_all_counts_within_the_horizon() {
        let r = rules(30 * MIN); // horizon 12 h
        let (j, _) =
            History::default().update(&[vault(0, 1000 * MB, 0, 0, 13 * 60 * MIN)], 10 * MIN, r);
        assert!(!j[0].at_risk, "expiry beyond the horizon");
        let (j, _) =
            History::default().update(&[vault(0, 1000 * MB, 0, 0, 11 * 60 * MIN)], 10 * MIN, r);
        assert!(j[0].at_risk);
        // Fully uploaded is never at risk (it is awaiting commit).
        let (j, _) =
            History::default().update(&[vault(1000 * MB, 1000 * MB, 0, 5, 20 * MIN)], 10 * MIN, r);
        assert!(!j[0].at_risk && j[0].awaiting_commit);
    }

    #[test]
    fn leaving_sessions_are_counted_by_expiry() {
        let mut h = History::default();
        let (_, ended) = h.update(
            &[
                session("a", 1, None, 50 * MIN),
                session("b", 1, None, 10 * MIN),
            ],
            5 * MIN,
            rules(30 * MIN),
        );
        assert!(ended.is_empty(), "first poll counts nothing");
        let (_, ended) = h.update(&[], 20 * MIN, rules(30 * MIN));
        assert_eq!(
            ended,
            vec![
                ("7".to_string(), Outcome::Completed),
                ("7".to_string(), Outcome::Expired)
            ]
        );
        assert!(h.is_empty());
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod mutant_tests;
