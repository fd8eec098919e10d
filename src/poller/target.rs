//! The state of one target between polls, and its rendering into a
//! [`TargetFragment`]. Owned by the target's poll task only.

use std::collections::BTreeMap;

use crate::metrics::text::Value;
use crate::metrics::{Family, TargetFragment};
use crate::model::{FileCounts, Session, SessionState, UnixMillis};
use crate::upstream::vault::BurstInfo;
use crate::upstream::{ErrorReason, FetchError};

use super::history::{History, Outcome, Rules};

/// Per-owner figures of one successful poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerStats {
    /// Sessions per state.
    pub sessions: BTreeMap<SessionState, u64>,
    /// Sum of `uploaded`.
    pub uploaded: u64,
    /// Sum of declared sizes.
    pub size: u64,
    /// Sum of uploaded parts.
    pub parts: u64,
    /// Earliest expiry.
    pub next_expiry: Option<UnixMillis>,
    /// Latest last upload.
    pub last_upload: Option<UnixMillis>,
    /// Earliest creation.
    pub oldest_created: Option<UnixMillis>,
    /// Stalled sessions.
    pub stalled: u64,
    /// Fully uploaded, uncommitted sessions.
    pub awaiting_commit: u64,
    /// Sessions that will not finish before they expire.
    pub at_risk: u64,
    /// Summed file counts, if any session had them (deepset).
    pub files: Option<FileCounts>,
    /// Display name from the newest session that named the owner.
    pub name: Option<(Option<UnixMillis>, String)>,
}

/// Everything the exporter knows about one target.
#[derive(Debug)]
pub struct TargetState {
    /// Bytes per family of the last rendering (buffers are sized from it);
    /// a `Mutex` only because `render` takes `&self`: it is never contended.
    render_sizes: std::sync::Mutex<Vec<usize>>,
    name: String,
    kind: &'static str,
    rules: Rules,
    stale_after_ms: i64,
    /// Figures of the last successful poll (dropped once stale).
    owners: BTreeMap<String, OwnerStats>,
    /// Time of the last successful poll.
    last_success: Option<UnixMillis>,
    up: bool,
    polled: bool,
    poll_seconds: f64,
    errors: [u64; ErrorReason::ALL.len()],
    api_requests: BTreeMap<&'static str, u64>,
    ended: BTreeMap<(String, Outcome), u64>,
    burst: Option<BurstInfo>,
    history: History,
    /// Calls of the last poll (for the budget).
    last_poll_calls: u64,
    /// The wait scheduled after the last poll.
    interval: Option<std::time::Duration>,
}

impl TargetState {
    /// A target that has not been polled yet.
    pub fn new(name: &str, kind: &'static str, rules: Rules, stale_after_ms: i64) -> Self {
        TargetState {
            render_sizes: std::sync::Mutex::default(),
            name: name.to_string(),
            kind,
            rules,
            stale_after_ms,
            owners: BTreeMap::new(),
            last_success: None,
            up: false,
            polled: false,
            poll_seconds: 0.0,
            errors: [0; ErrorReason::ALL.len()],
            api_requests: BTreeMap::new(),
            ended: BTreeMap::new(),
            burst: None,
            history: History::default(),
            last_poll_calls: 0,
            interval: None,
        }
    }

    /// A target that has not been polled yet, judged by its configuration.
    pub fn for_target(target: &crate::config::TargetConfig) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        TargetState::new(
            &target.name,
            target.kind.label(),
            Rules {
                stall_after_ms: ms(target.stall_after),
                at_risk_horizon_ms: ms(target.at_risk_horizon),
            },
            ms(target.stale_after),
        )
    }

    /// Applies a changed configuration of the same target (kept: counters,
    /// history, last figures).
    pub fn reconfigure(&mut self, target: &crate::config::TargetConfig) {
        let fresh = TargetState::for_target(target);
        self.rules = fresh.rules;
        self.stale_after_ms = fresh.stale_after_ms;
    }

    /// The `kind` label.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// True once a poll (successful or not) has finished.
    pub fn polled(&self) -> bool {
        self.polled
    }

    /// True if the last poll succeeded.
    pub fn up(&self) -> bool {
        self.up
    }

    /// Per-owner figures currently exposed.
    pub fn owners(&self) -> &BTreeMap<String, OwnerStats> {
        &self.owners
    }

    /// Failed polls so far for `reason`.
    pub fn errors(&self, reason: ErrorReason) -> u64 {
        self.errors[reason as usize]
    }

    /// The latest limit headers, if the upstream sends them.
    pub fn burst(&self) -> Option<BurstInfo> {
        self.burst
    }

    /// Upstream calls made by the last poll.
    pub fn last_poll_calls(&self) -> u64 {
        self.last_poll_calls
    }

    /// Records the wait scheduled before the next poll.
    pub fn set_interval(&mut self, wait: std::time::Duration) {
        self.interval = Some(wait);
    }

    /// Adds upstream calls to the request counters.
    pub fn count_calls(&mut self, calls: Vec<(&'static str, u64)>) {
        self.last_poll_calls = calls.iter().map(|(_, n)| n).sum();
        for (endpoint, n) in calls {
            *self.api_requests.entry(endpoint).or_default() += n;
        }
    }

    /// Records the latest limit headers.
    pub fn set_burst(&mut self, burst: BurstInfo) {
        self.burst = Some(burst);
    }

    /// Takes in a successful poll made at `now`.
    pub fn record_success(&mut self, sessions: &[Session], now: UnixMillis, poll_seconds: f64) {
        let (judgements, ended) = self.history.update(sessions, now, self.rules);
        for (owner, outcome) in ended {
            *self.ended.entry((owner, outcome)).or_default() += 1;
        }
        let mut owners: BTreeMap<String, OwnerStats> = BTreeMap::new();
        for (s, j) in sessions.iter().zip(judgements) {
            // Look up before inserting: most sessions belong to an owner
            // already seen, and `entry` would copy the id every time.
            if !owners.contains_key(&s.owner_id) {
                if !self.owners.contains_key(&s.owner_id) {
                    // Counters start at 0 when an owner first appears, so
                    // that increase() sees the owner's first ended session.
                    for outcome in [Outcome::Completed, Outcome::Expired] {
                        self.ended.entry((s.owner_id.clone(), outcome)).or_default();
                    }
                }
                owners.insert(s.owner_id.clone(), OwnerStats::default());
            }
            let Some(o) = owners.get_mut(&s.owner_id) else {
                continue;
            };
            *o.sessions.entry(s.state).or_default() += 1;
            o.uploaded = o.uploaded.saturating_add(s.uploaded);
            o.size = o.size.saturating_add(s.size.unwrap_or(0));
            o.parts = o.parts.saturating_add(s.parts);
            if s.is_live() {
                o.next_expiry = min_opt(o.next_expiry, s.expires);
            }
            if let Some(f) = s.files {
                let sum = o.files.get_or_insert_with(FileCounts::default);
                sum.total = sum.total.saturating_add(f.total);
                sum.finished = sum.finished.saturating_add(f.finished);
                sum.failed = sum.failed.saturating_add(f.failed);
            }
            if let Some(n) = &s.owner_name {
                if o.name.as_ref().is_none_or(|(at, _)| *at <= s.created) {
                    o.name = Some((s.created, n.clone()));
                }
            }
            o.last_upload = max_opt(o.last_upload, s.last_upload);
            o.oldest_created = min_opt(o.oldest_created, s.created);
            o.stalled += u64::from(j.stalled);
            o.awaiting_commit += u64::from(j.awaiting_commit);
            o.at_risk += u64::from(j.at_risk);
        }
        self.owners = owners;
        self.last_success = Some(now);
        self.up = true;
        self.polled = true;
        self.poll_seconds = poll_seconds;
    }

    /// Takes in a failed poll. The last figures stay until `stale_after`.
    pub fn record_failure(&mut self, error: &FetchError, now: UnixMillis, poll_seconds: f64) {
        self.errors[error.reason() as usize] += 1;
        self.up = false;
        self.polled = true;
        self.poll_seconds = poll_seconds;
        let stale = match self.last_success {
            Some(t) => now.saturating_sub(t) >= self.stale_after_ms,
            None => true,
        };
        if stale {
            self.owners.clear();
        }
    }

    /// Renders the target's series.
    pub fn render(&self) -> TargetFragment {
        let hint = self
            .render_sizes
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default();
        let mut f = TargetFragment::with_capacities(&hint);
        let t = self.name.as_str();
        for (owner, o) in &self.owners {
            let l = [("target", t), ("owner_id", owner.as_str())];
            for (state, n) in &o.sessions {
                f.sample(
                    Family::Sessions,
                    &[
                        ("target", t),
                        ("owner_id", owner),
                        ("state", state.as_str()),
                    ],
                    Value::U(*n),
                );
            }
            if let Some(e) = o.next_expiry {
                f.sample(Family::NextExpiry, &l, Value::Millis(e));
                if let Some(polled_at) = self.last_success {
                    f.sample(
                        Family::TimeToExpiry,
                        &l,
                        Value::Millis(e.saturating_sub(polled_at)),
                    );
                }
            }
            if let Some(v) = o.last_upload {
                f.sample(Family::LastUpload, &l, Value::Millis(v));
            }
            if let Some(v) = o.oldest_created {
                f.sample(Family::OldestCreated, &l, Value::Millis(v));
            }
            f.sample(Family::Stalled, &l, Value::U(o.stalled));
            if self.kind == "vault" {
                f.sample(Family::AtRisk, &l, Value::U(o.at_risk));
                f.sample(Family::UploadedBytes, &l, Value::U(o.uploaded));
                f.sample(Family::SizeBytes, &l, Value::U(o.size));
                f.sample(Family::UploadedParts, &l, Value::U(o.parts));
                f.sample(Family::AwaitingCommit, &l, Value::U(o.awaiting_commit));
            }
            if let Some(files) = o.files {
                for (result, n) in [
                    ("finished", files.finished),
                    ("failed", files.failed),
                    ("pending", files.pending()),
                ] {
                    f.sample(
                        Family::IngestedFiles,
                        &[("target", t), ("owner_id", owner), ("result", result)],
                        Value::U(n),
                    );
                }
            }
            if let Some((_, name)) = &o.name {
                f.sample(
                    Family::OwnerInfo,
                    &[("target", t), ("owner_id", owner), ("owner_name", name)],
                    Value::U(1),
                );
            }
        }
        for ((owner, outcome), n) in &self.ended {
            f.sample(
                Family::Ended,
                &[
                    ("target", t),
                    ("owner_id", owner),
                    ("outcome", outcome.as_str()),
                ],
                Value::U(*n),
            );
        }
        f.sample(
            Family::TargetUp,
            &[("target", t), ("kind", self.kind)],
            Value::U(u64::from(self.up)),
        );
        f.sample(
            Family::LastSuccess,
            &[("target", t)],
            Value::Millis(self.last_success.unwrap_or(0)),
        );
        if self.polled {
            f.sample(
                Family::PollDuration,
                &[("target", t)],
                Value::F(self.poll_seconds),
            );
        }
        for reason in ErrorReason::ALL {
            f.sample(
                Family::PollErrors,
                &[("target", t), ("reason", reason.as_str())],
                Value::U(self.errors[reason as usize]),
            );
        }
        for (endpoint, n) in &self.api_requests {
            f.sample(
                Family::ApiRequests,
                &[("target", t), ("endpoint", endpoint)],
                Value::U(*n),
            );
        }
        if let Some(i) = self.interval {
            f.sample(
                Family::PollInterval,
                &[("target", t)],
                Value::F(i.as_secs_f64()),
            );
        }
        if let Some(b) = self.burst {
            f.sample(
                Family::ResponseDelay,
                &[("target", t)],
                Value::Millis(
                    b.response_delay_ms
                        .map_or(0, |d| i64::try_from(d).unwrap_or(i64::MAX)),
                ),
            );
            if let Some(r) = b.remaining {
                f.sample(Family::BurstRemaining, &[("target", t)], Value::U(r));
            }
            if let Some(l) = b.limit {
                f.sample(Family::BurstLimit, &[("target", t)], Value::U(l));
            }
        }
        if let Ok(mut s) = self.render_sizes.lock() {
            *s = f.sizes();
        }
        f
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::FetchError;

    fn session(owner: &str, uploaded: u64) -> Session {
        Session {
            id: format!("{owner}-{uploaded}"),
            owner_id: owner.into(),
            owner_name: None,
            path: None,
            state: SessionState::Active,
            size: Some(1000),
            uploaded,
            parts: 1,
            created: Some(0),
            expires: Some(10_000_000),
            last_upload: Some(0),
            files: None,
        }
    }

    fn render(t: &TargetState) -> String {
        let f = t.render();
        Family::ALL
            .iter()
            .map(|&fam| f.family(fam).to_string())
            .collect()
    }

    #[test]
    fn failed_target_keeps_series_until_stale() {
        let mut t = TargetState::new(
            "t",
            "vault",
            Rules {
                stall_after_ms: 60_000,
                at_risk_horizon_ms: 0,
            },
            300_000,
        );
        t.record_success(
            &[session("1", 10), session("1", 20), session("2", 5)],
            1_000,
            0.1,
        );
        assert_eq!(t.owners()["1"].uploaded, 30);
        let err = FetchError::Timeout {
            endpoint: "x",
            timeout: std::time::Duration::from_secs(1),
        };
        // Within stale_after: series kept, marked down.
        t.record_failure(&err, 1_000 + 299_999, 0.2);
        let text = render(&t);
        assert!(
            text.contains("upload_session_uploaded_bytes{target=\"t\",owner_id=\"1\"} 30\n"),
            "{text}"
        );
        assert!(text.contains("upload_session_target_up{target=\"t\",kind=\"vault\"} 0\n"));
        assert!(text.contains("upload_session_last_success_timestamp_seconds{target=\"t\"} 1\n"));
        assert!(
            text.contains("upload_session_poll_errors_total{target=\"t\",reason=\"timeout\"} 1\n")
        );
        // At stale_after: per-owner series go, health and counters stay.
        t.record_failure(&err, 1_000 + 300_000, 0.2);
        let text = render(&t);
        let gauges: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("upload_session_ended_total"))
            .collect();
        assert!(!gauges.iter().any(|l| l.contains("owner_id=")), "{text}");
        // Counters stay, starting from 0 when the owner first appeared.
        assert!(
            text.contains(
                "upload_session_ended_total{target=\"t\",owner_id=\"2\",outcome=\"expired\"} 0\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("upload_session_poll_errors_total{target=\"t\",reason=\"timeout\"} 2\n")
        );
    }

    #[test]
    fn owners_without_sessions_disappear() {
        let mut t = TargetState::new(
            "t",
            "vault",
            Rules {
                stall_after_ms: 60_000,
                at_risk_horizon_ms: 0,
            },
            300_000,
        );
        let mut grown = session("2", 5);
        t.record_success(&[session("1", 10), grown.clone()], 1_000, 0.1);
        grown.uploaded = 6;
        t.record_success(&[grown], 2_000, 0.1);
        let text = render(&t);
        let gauges: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("upload_session_ended_total"))
            .collect();
        assert!(
            !gauges.iter().any(|l| l.contains("owner_id=\"1\"")),
            "{text}"
        );
        assert!(text.contains(
            "upload_session_ended_total{target=\"t\",owner_id=\"1\",outcome=\"completed\"} 1\n"
        ));
        assert!(text
            .contains("upload_session_sessions{target=\"t\",owner_id=\"2\",state=\"active\"} 1\n"));
    }
}
