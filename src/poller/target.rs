//! The state of one target between polls, and its rendering into a
//! [`TargetFragment`]. Owned by the target's poll task only.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::kinds::Kind;
use crate::metrics::text::Value;
use crate::metrics::{Family, TargetFragment};
use crate::model::{FileCounts, Measure, Session, SessionState, UnixMillis};
use crate::upstream::{BurstInfo, ErrorReason, FetchError};

use super::board::{LastError, Polled, TargetView};
use super::history::{History, Judgement, Outcome, Rules};
use crate::upstream::redact::Redactor;

/// Longest label value exported, in characters. Owner ids and names come
/// from the upstream: a 100 KB name would make Prometheus refuse the whole
/// scrape once `label_value_length_limit` is set, and every target would
/// lose its data.
pub const MAX_LABEL_CHARS: usize = 256;
/// Hex digits of the hash that ends a cut owner id.
const LABEL_HASH_HEX: usize = 16;
/// Owners whose cut labels are logged, per target (after that, silence).
const CAP_LOGS_KEPT: usize = 1000;

/// `id` as an `owner_id` label: unchanged up to [`MAX_LABEL_CHARS`]
/// characters; longer, its start, `…` and the first hex digits of its
/// SHA-256, so that two long ids sharing their start stay two series and
/// an id keeps its label from poll to poll and across restarts.
pub fn owner_id_label(id: &str) -> Cow<'_, str> {
    use sha2::{Digest, Sha256};
    if id.chars().count() <= MAX_LABEL_CHARS {
        return Cow::Borrowed(id);
    }
    let hash = Sha256::digest(id.as_bytes());
    let hex: String = hash
        .iter()
        .flat_map(|b| [b >> 4, b & 0xf])
        .take(LABEL_HASH_HEX)
        .map(|n| char::from_digit(u32::from(n), 16).unwrap_or('0'))
        .collect();
    let head: String = id
        .chars()
        .take(MAX_LABEL_CHARS - 1 - LABEL_HASH_HEX)
        .collect();
    Cow::Owned(format!("{head}…{hex}"))
}

/// `name` as an `owner_name` label: cut to [`MAX_LABEL_CHARS`] characters
/// (the last one `…`).
pub fn owner_name_label(name: &str) -> Cow<'_, str> {
    if name.chars().count() <= MAX_LABEL_CHARS {
        return Cow::Borrowed(name);
    }
    let head: String = name.chars().take(MAX_LABEL_CHARS - 1).collect();
    Cow::Owned(format!("{head}…"))
}

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
    measure: Measure,
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
    /// The kind's own per-target gauges.
    gauges: Vec<(Family, Value)>,
    history: History,
    /// Calls of the last poll (for the kind's pacing).
    last_poll_calls: u64,
    /// The wait scheduled after the last poll.
    scheduled_delay: Option<std::time::Duration>,
    /// Owners whose over-long labels were logged (once each).
    capped_logged: BTreeSet<String>,
    /// Judgements of the last successful poll, until [`keep_sessions`]
    /// pairs them with its sessions.
    ///
    /// [`keep_sessions`]: TargetState::keep_sessions
    judgements: Vec<Judgement>,
    /// The last successful poll's sessions, for the `/sessions` page.
    kept: Option<Arc<Polled>>,
    /// The last failure since the last success.
    last_error: Option<LastError>,
    /// Masks the target's secrets in the error shown on the page (errors
    /// are masked where upstream text enters them; this is the second net).
    redactor: Redactor,
}

impl TargetState {
    /// A target of `kind` that has not been polled yet.
    pub fn new(name: &str, kind: &'static dyn Kind, rules: Rules, stale_after_ms: i64) -> Self {
        TargetState::blank(name, kind.name(), kind.measure(), rules, stale_after_ms)
    }

    fn blank(
        name: &str,
        kind: &'static str,
        measure: Measure,
        rules: Rules,
        stale_after_ms: i64,
    ) -> Self {
        TargetState {
            render_sizes: std::sync::Mutex::default(),
            name: name.to_string(),
            kind,
            measure,
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
            gauges: Vec::new(),
            history: History::default(),
            last_poll_calls: 0,
            scheduled_delay: None,
            capped_logged: BTreeSet::new(),
            judgements: Vec::new(),
            kept: None,
            last_error: None,
            redactor: Redactor::new([]),
        }
    }

    /// A target that has not been polled yet, judged by its configuration.
    pub fn for_target(target: &crate::settings::TargetConfig) -> Self {
        let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut state = TargetState::blank(
            &target.name,
            target.kind_name(),
            target.kind.measure(),
            Rules {
                stall_after_ms: ms(target.stall_after),
                at_risk_horizon_ms: ms(target.at_risk_horizon),
            },
            ms(target.stale_after),
        );
        state.redactor = Redactor::new(target.kind.secrets());
        state
    }

    /// Applies a changed configuration of the same target (kept: counters,
    /// history, last figures).
    pub fn reconfigure(&mut self, target: &crate::settings::TargetConfig) {
        let fresh = TargetState::for_target(target);
        self.rules = fresh.rules;
        self.stale_after_ms = fresh.stale_after_ms;
        self.redactor = fresh.redactor;
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
    pub fn set_scheduled_delay(&mut self, wait: std::time::Duration) {
        self.scheduled_delay = Some(wait);
    }

    /// Adds upstream calls to the request counters.
    pub fn count_calls(&mut self, calls: Vec<(&'static str, u64)>) {
        self.last_poll_calls = calls.iter().map(|(_, n)| n).sum();
        for (endpoint, n) in calls {
            *self.api_requests.entry(endpoint).or_default() += n;
        }
    }

    /// Records the kind's own per-target gauges of the last poll.
    pub fn set_gauges(&mut self, gauges: Vec<(Family, Value)>) {
        self.gauges = gauges;
    }

    /// Records the latest limit headers.
    pub fn set_burst(&mut self, burst: BurstInfo) {
        self.burst = Some(burst);
    }

    /// Takes in a successful poll made at `now`.
    pub fn record_success(&mut self, sessions: &[Session], now: UnixMillis, poll_seconds: f64) {
        // Labels are capped before anything is keyed by them (history,
        // ended counters); a copy is made only when a label is too long.
        let capped: Vec<Session>;
        let sessions = if sessions.iter().any(too_long) {
            capped = sessions.iter().map(|s| self.cap_labels(s)).collect();
            &capped[..]
        } else {
            sessions
        };
        let (judgements, ended) = self.history.update(sessions, now, self.rules);
        for (owner, outcome) in ended {
            *self.ended.entry((owner, outcome)).or_default() += 1;
        }
        let mut owners: BTreeMap<String, OwnerStats> = BTreeMap::new();
        for (s, j) in sessions.iter().zip(judgements.iter()) {
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
        self.judgements = judgements;
        self.last_error = None;
        self.last_success = Some(now);
        self.up = true;
        self.polled = true;
        self.poll_seconds = poll_seconds;
    }

    /// `s` with its owner labels cut to [`MAX_LABEL_CHARS`]; logs each
    /// owner concerned once.
    fn cap_labels(&mut self, s: &Session) -> Session {
        let id = owner_id_label(&s.owner_id).into_owned();
        let name = s
            .owner_name
            .as_deref()
            .map(|n| owner_name_label(n).into_owned());
        let cut_id = id.len() != s.owner_id.len();
        let cut_name = name.as_ref().map(String::len) != s.owner_name.as_ref().map(String::len);
        if (cut_id || cut_name)
            && self.capped_logged.len() < CAP_LOGS_KEPT
            && self.capped_logged.insert(id.clone())
        {
            tracing::warn!(
                target = %self.name,
                owner_id = %id,
                owner_id_chars = s.owner_id.chars().count(),
                owner_name_chars = s.owner_name.as_ref().map_or(0, |n| n.chars().count()),
                "owner label longer than {MAX_LABEL_CHARS} characters from the upstream; exported \
                 cut (owner ids keep a hash suffix so that they stay distinct)"
            );
        }
        Session {
            owner_id: id,
            owner_name: name,
            ..s.clone()
        }
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
            self.kept = None;
        }
        self.last_error = Some(LastError {
            reason: error.reason(),
            message: crate::text::clean(&self.redactor.text(&error.to_string(), 300)),
            at: now,
        });
    }

    /// Keeps the sessions of the poll [`record_success`] just took in (with
    /// its judgements) for the `/sessions` page, replacing the previous
    /// ones: the vector is moved, not copied.
    ///
    /// [`record_success`]: TargetState::record_success
    pub fn keep_sessions(&mut self, sessions: Vec<Session>) {
        let judgements = std::mem::take(&mut self.judgements);
        self.kept = match self.last_success {
            Some(at) if judgements.len() == sessions.len() => Some(Arc::new(Polled {
                at,
                sessions,
                judgements,
            })),
            _ => None,
        };
    }

    /// What the `/sessions` page shows of this target.
    pub fn view(&self) -> TargetView {
        TargetView {
            name: self.name.clone(),
            kind: self.kind,
            measure: self.measure,
            up: self.up,
            polled: self.polled,
            last_success: self.last_success,
            last_error: self.last_error.clone(),
            polled_sessions: self.kept.clone(),
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
            if self.measure.has_size() {
                f.sample(Family::AtRisk, &l, Value::U(o.at_risk));
            }
            if self.measure.counts_bytes() {
                f.sample(Family::UploadedBytes, &l, Value::U(o.uploaded));
            }
            if self.measure.has_size() {
                f.sample(Family::SizeBytes, &l, Value::U(o.size));
            }
            if self.measure.counts_bytes() {
                f.sample(Family::UploadedParts, &l, Value::U(o.parts));
            }
            if self.measure.has_size() {
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
        if let Some(i) = self.scheduled_delay {
            f.sample(
                Family::PollInterval,
                &[("target", t)],
                Value::F(i.as_secs_f64()),
            );
        }
        for (family, v) in &self.gauges {
            f.sample(*family, &[("target", t)], *v);
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

fn too_long(s: &Session) -> bool {
    // Bytes bound characters from above: the cheap test first.
    let long = |v: &str| v.len() > MAX_LABEL_CHARS && v.chars().count() > MAX_LABEL_CHARS;
    long(&s.owner_id) || s.owner_name.as_deref().is_some_and(long)
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
    use crate::secret::Secret;
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
            &crate::kinds::vault::Vault,
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
    fn long_owner_labels_are_cut_distinct_and_stable() {
        let a = format!("{}a", "x".repeat(15_000));
        let b = format!("{}b", "x".repeat(15_000));
        let (la, lb) = (owner_id_label(&a), owner_id_label(&b));
        assert_eq!(la.chars().count(), MAX_LABEL_CHARS);
        assert_eq!(lb.chars().count(), MAX_LABEL_CHARS);
        assert_ne!(la, lb);
        assert_eq!(owner_id_label(&a), la, "stable");
        assert!(la.starts_with("xxxx") && la.contains('…'), "{la}");
        let exact = "é".repeat(MAX_LABEL_CHARS);
        assert_eq!(owner_id_label(&exact), exact.as_str());
        assert_eq!(owner_name_label(&exact), exact.as_str());
        let name = owner_name_label(&"N".repeat(100_000)).into_owned();
        assert_eq!(name.chars().count(), MAX_LABEL_CHARS);
        assert!(name.ends_with("N…"));

        let mut t = TargetState::new(
            "t",
            &crate::kinds::deepset::Deepset,
            Rules {
                stall_after_ms: 60_000,
                at_risk_horizon_ms: 0,
            },
            300_000,
        );
        let mut s1 = session(&a, 1);
        s1.owner_name = Some("N".repeat(100_000));
        let s2 = session(&b, 2);
        t.record_success(&[s1, s2], 1_000, 0.1);
        let text = render(&t);
        assert!(
            text.lines().all(|l| l.len() < 3 * MAX_LABEL_CHARS),
            "a line is too long"
        );
        assert!(text.contains(&format!("owner_id=\"{la}\"")));
        assert!(text.contains(&format!("owner_id=\"{lb}\"")));
        assert!(text.contains(&format!("owner_id=\"{la}\",owner_name=\"{name}\"")));
        assert_eq!(t.capped_logged.len(), 2);
    }

    #[test]
    fn owners_without_sessions_disappear() {
        let mut t = TargetState::new(
            "t",
            &crate::kinds::vault::Vault,
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

    #[test]
    fn the_sessions_page_keeps_the_last_poll_until_stale_with_the_error_scrubbed() {
        let mut t = TargetState::new(
            "t",
            &crate::kinds::vault::Vault,
            Rules {
                stall_after_ms: 60_000,
                at_risk_horizon_ms: 0,
            },
            300_000,
        );
        t.redactor = Redactor::new([&Secret::new("hunter2")]);
        let sessions = vec![session("1", 10), session("2", 5)];
        t.record_success(&sessions, 1_000, 0.1);
        t.keep_sessions(sessions);
        let v = t.view();
        assert_eq!(
            (v.up, v.session_count(), v.last_success),
            (true, 2, Some(1_000))
        );
        let kept = v.polled_sessions.unwrap();
        assert_eq!((kept.at, kept.judgements.len()), (1_000, 2));
        // A failure keeps them (marked down) until stale_after, with the
        // error's secret replaced.
        let err = FetchError::HttpStatus {
            endpoint: "auth",
            status: 500,
            snippet: "echo: password=hunter2".into(),
        };
        t.record_failure(&err, 1_000 + 299_999, 0.2);
        let v = t.view();
        assert_eq!((v.up, v.session_count()), (false, 2));
        let e = v.last_error.unwrap();
        assert_eq!(e.message, "auth: HTTP 500: echo: password=***");
        assert_eq!(
            (e.reason, e.at),
            (crate::upstream::ErrorReason::HttpStatus, 300_999)
        );
        t.record_failure(&err, 1_000 + 300_000, 0.2);
        assert_eq!(t.view().session_count(), 0, "dropped with the series");
        // The next success clears the error.
        t.record_success(&[], 400_000, 0.1);
        t.keep_sessions(vec![]);
        assert!(t.view().last_error.is_none());
    }
}
