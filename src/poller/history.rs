//! What the poller remembers between polls of one target: for each listed
//! session its bytes and when it last made progress, so that stalls can be
//! told apart from slow uploads and sessions that leave the list can be
//! counted as completed or expired. Only sessions in the latest list are
//! kept, so memory follows the number of live sessions.

use std::collections::HashMap;

use crate::model::{Session, SessionState, UnixMillis};

/// Why a session left the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Left before its expiry: committed or aborted.
    Completed,
    /// Left after its expiry: purged with its parts.
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
}

/// Per-session judgement of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judgement {
    /// Not moving when it should (see [`History::update`]).
    pub stalled: bool,
    /// Every declared byte uploaded, not committed (Vault).
    pub awaiting_commit: bool,
}

/// The history of one target.
#[derive(Debug, Default)]
pub struct History {
    sessions: HashMap<String, Tracked>,
    /// False until the first successful poll: before it, nothing can be
    /// said to have ended.
    primed: bool,
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
    /// A session ends when it leaves a live state (active/open): by
    /// disappearing from the list (completed before its expiry, expired
    /// after it), by closing (completed) or by expiring while listed.
    pub fn update(
        &mut self,
        sessions: &[Session],
        now: UnixMillis,
        stall_after_ms: i64,
    ) -> (Vec<Judgement>, Vec<(String, Outcome)>) {
        let mut next = HashMap::with_capacity(sessions.len());
        let mut judgements = Vec::with_capacity(sessions.len());
        let mut ended = Vec::new();
        for s in sessions {
            let progress = s.progress();
            let prev = self.sessions.get(&s.id);
            let progress_at = match prev {
                // A new state (e.g. just closed) starts a new clock.
                Some(p) if p.state != s.state => now,
                // Grew since the last poll: progress happened by now, even
                // if the upstream's last_uploaded_date lags.
                Some(p) if progress > p.progress => now.max(s.last_upload.unwrap_or(now)),
                Some(p) => p.progress_at.max(s.last_upload.unwrap_or(i64::MIN)),
                // First sight of a closed session: its closing time is
                // unknown, so start counting now.
                None if s.state == SessionState::Closed => now,
                // Otherwise trust the upstream's dates.
                None => s.last_upload.or(s.created).unwrap_or(now),
            };
            if let Some(p) = prev {
                if p.state.is_live() && !s.is_live() && self.primed {
                    let outcome = match s.state {
                        SessionState::Closed => Outcome::Completed,
                        _ => Outcome::Expired,
                    };
                    ended.push((s.owner_id.clone(), outcome));
                }
            }
            let idle = now.saturating_sub(progress_at) >= stall_after_ms;
            let judgement = match (s.state, s.files) {
                (SessionState::Active, _) => {
                    let complete = s.size.is_some_and(|size| size > 0 && s.uploaded >= size);
                    Judgement {
                        stalled: idle && !complete,
                        awaiting_commit: complete,
                    }
                }
                (SessionState::Open, _) => Judgement {
                    stalled: idle
                        && s.expires
                            .is_some_and(|e| e.saturating_sub(now) <= stall_after_ms),
                    awaiting_commit: false,
                },
                (SessionState::Closed, Some(f)) => Judgement {
                    stalled: idle && f.pending() > 0,
                    awaiting_commit: false,
                },
                _ => Judgement::default(),
            };
            judgements.push(judgement);
            next.insert(
                s.id.clone(),
                Tracked {
                    owner_id: s.owner_id.clone(),
                    state: s.state,
                    progress,
                    progress_at,
                    expires: s.expires,
                },
            );
        }
        if self.primed {
            for (id, t) in &self.sessions {
                if t.state.is_live() && !next.contains_key(id) {
                    let outcome = match t.expires {
                        Some(e) if e <= now => Outcome::Expired,
                        _ => Outcome::Completed,
                    };
                    ended.push((t.owner_id.clone(), outcome));
                }
            }
        }
        ended.sort();
        self.sessions = next;
        self.primed = true;
        (judgements, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileCounts;

    const MIN: i64 = 60_000;

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
        let (j, _) = h.update(&[session("a", 10, Some(0), 1000 * MIN)], 40 * MIN, stall);
        assert!(j[0].stalled);
        // Bytes grew (last_uploaded_date lagging): not stalled.
        let (j, _) = h.update(&[session("a", 20, Some(0), 1000 * MIN)], 41 * MIN, stall);
        assert!(!j[0].stalled);
        // No growth for 29 more minutes: still fine; at 30: stalled.
        let (j, _) = h.update(&[session("a", 20, Some(0), 1000 * MIN)], 70 * MIN, stall);
        assert!(!j[0].stalled);
        let (j, _) = h.update(&[session("a", 20, Some(0), 1000 * MIN)], 71 * MIN, stall);
        assert!(j[0].stalled);
    }

    #[test]
    fn recent_upload_is_not_stalled_and_complete_awaits_commit() {
        let mut h = History::default();
        let (j, _) = h.update(
            &[session("a", 10, Some(35 * MIN), 1000 * MIN)],
            40 * MIN,
            30 * MIN,
        );
        assert_eq!(j[0], Judgement::default());
        let (j, _) = h.update(
            &[session("b", 100, Some(0), 1000 * MIN)],
            40 * MIN,
            30 * MIN,
        );
        assert_eq!(
            j[0],
            Judgement {
                stalled: false,
                awaiting_commit: true
            }
        );
        let mut expired = session("c", 10, Some(0), 10 * MIN);
        expired.state = SessionState::Expired;
        let (j, _) = h.update(&[expired], 40 * MIN, 30 * MIN);
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
        let (j, _) = h.update(&[open(3, 160 * MIN)], 40 * MIN, stall);
        assert!(!j[0].stalled);
        // Near expiry and still no new file: stalled.
        let (j, _) = h.update(&[open(3, 160 * MIN)], 140 * MIN, stall);
        assert!(j[0].stalled);
        // A new file: moving again.
        let (j, _) = h.update(&[open(4, 160 * MIN)], 141 * MIN, stall);
        assert!(!j[0].stalled);
        // Closed: counted as completed once; ingestion gets its own clock.
        let closed = FileCounts {
            total: 4,
            finished: 1,
            failed: 0,
        };
        let c = deepset("d", SessionState::Closed, closed, 160 * MIN);
        let (j, ended) = h.update(std::slice::from_ref(&c), 142 * MIN, stall);
        assert_eq!(ended, vec![("7".to_string(), Outcome::Completed)]);
        assert!(!j[0].stalled);
        let (j, ended) = h.update(&[c], 172 * MIN, stall);
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
            stall,
        );
        assert!(!j[0].stalled);
    }

    #[test]
    fn expiring_while_listed_counts_once() {
        let mut h = History::default();
        h.update(&[session("v", 1, None, 10 * MIN)], 5 * MIN, 30 * MIN);
        let mut expired = session("v", 1, None, 10 * MIN);
        expired.state = SessionState::Expired;
        let (_, ended) = h.update(std::slice::from_ref(&expired), 11 * MIN, 30 * MIN);
        assert_eq!(ended, vec![("7".to_string(), Outcome::Expired)]);
        let (_, ended) = h.update(&[expired], 12 * MIN, 30 * MIN);
        assert!(ended.is_empty());
        let (_, ended) = h.update(&[], 13 * MIN, 30 * MIN);
        assert!(
            ended.is_empty(),
            "purge of an already expired session is not counted again"
        );
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
            30 * MIN,
        );
        assert!(ended.is_empty(), "first poll counts nothing");
        let (_, ended) = h.update(&[], 20 * MIN, 30 * MIN);
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
