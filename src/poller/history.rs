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
    uploaded: u64,
    /// Last time the session was seen or known to make progress.
    progress_at: UnixMillis,
    expires: Option<UnixMillis>,
}

/// Per-session judgement of one poll.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Judgement {
    /// No progress for `stall_after` and bytes still missing.
    pub stalled: bool,
    /// Every declared byte uploaded, not committed.
    pub awaiting_commit: bool,
}

/// The history of one target.
#[derive(Debug, Default)]
pub struct History {
    sessions: HashMap<String, Tracked>,
    /// False until the first successful poll: before it, nothing can be
    /// said to have left the list.
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
    /// session (same order as `sessions`) and the sessions that left.
    pub fn update(
        &mut self,
        sessions: &[Session],
        now: UnixMillis,
        stall_after_ms: i64,
    ) -> (Vec<Judgement>, Vec<(String, Outcome)>) {
        let mut next = HashMap::with_capacity(sessions.len());
        let mut judgements = Vec::with_capacity(sessions.len());
        for s in sessions {
            let seen = s.last_upload.or(s.created);
            let progress_at = match self.sessions.get(&s.id) {
                // Bytes grew since the last poll: progress happened by now,
                // even if the upstream's last_uploaded_date lags.
                Some(prev) if s.uploaded > prev.uploaded => now.max(seen.unwrap_or(now)),
                Some(prev) => prev.progress_at.max(seen.unwrap_or(i64::MIN)),
                // First sight: trust the upstream's date; without one,
                // start counting now.
                None => seen.unwrap_or(now),
            };
            let complete = s.size.is_some_and(|size| size > 0 && s.uploaded >= size);
            let live = matches!(s.state, SessionState::Active | SessionState::Open);
            judgements.push(Judgement {
                stalled: live && !complete && now.saturating_sub(progress_at) >= stall_after_ms,
                awaiting_commit: live && complete,
            });
            next.insert(
                s.id.clone(),
                Tracked {
                    owner_id: s.owner_id.clone(),
                    uploaded: s.uploaded,
                    progress_at,
                    expires: s.expires,
                },
            );
        }
        let mut ended = Vec::new();
        if self.primed {
            for (id, t) in &self.sessions {
                if !next.contains_key(id) {
                    let outcome = match t.expires {
                        Some(e) if e <= now => Outcome::Expired,
                        _ => Outcome::Completed,
                    };
                    ended.push((t.owner_id.clone(), outcome));
                }
            }
            ended.sort();
        }
        self.sessions = next;
        self.primed = true;
        (judgements, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
