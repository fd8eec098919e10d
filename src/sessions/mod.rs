//! What is stuck, session by session: one model of a session row (state,
//! progress, rate, ETA, expires-in and urgency are computed here, in one
//! place) and its renderers — the `sessions` terminal view
//! (the `report` module), the `/sessions` page ([`html`]) and
//! `/api/v1/sessions` ([`json`]).
//!
//! The web renderers read the [`Board`] (kept by the poller): per
//! target, the sessions and judgements of its last successful poll,
//! published by the poll task next to its metrics. A request filters and
//! renders that snapshot; it never calls an upstream.

pub mod html;
pub mod http;
pub mod json;

use std::sync::Arc;

use crate::model::{Session, SessionState, UnixMillis};
pub use crate::poller::board::{Board, LastError, Polled, TargetView};
use crate::poller::history::Judgement;
pub use crate::text::{clean, cut_end, cut_start};

/// Rows per page, in HTML and JSON.
pub const PAGE_ROWS: usize = 500;
/// Upstream text (names, paths, ids) is cut to this many characters in every
/// renderer; the full text stays upstream.
pub const MAX_TEXT_CHARS: usize = 512;

/// A state a row can be filtered by (`?state=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// No progress when there should be.
    Stalled,
    /// Will not finish before it expires.
    AtRisk,
    /// Every byte uploaded, not committed.
    AwaitingCommit,
    /// Listed in this lifecycle state.
    Is(SessionState),
}

impl StateFilter {
    /// Every filter value, as the query takes it.
    pub const ALL: [StateFilter; 7] = [
        StateFilter::Stalled,
        StateFilter::AtRisk,
        StateFilter::AwaitingCommit,
        StateFilter::Is(SessionState::Active),
        StateFilter::Is(SessionState::Open),
        StateFilter::Is(SessionState::Closed),
        StateFilter::Is(SessionState::Expired),
    ];

    /// The query value.
    pub fn as_str(self) -> &'static str {
        match self {
            StateFilter::Stalled => "stalled",
            StateFilter::AtRisk => "at_risk",
            StateFilter::AwaitingCommit => "awaiting_commit",
            StateFilter::Is(s) => s.as_str(),
        }
    }

    /// Parses a query value (`at_risk`, `at-risk` and `at risk` alike).
    pub fn parse(s: &str) -> Option<StateFilter> {
        let norm = s.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        StateFilter::ALL.into_iter().find(|f| f.as_str() == norm)
    }
}

/// `?target=&owner_id=&state=` (each may repeat: any of the values).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Target names.
    pub targets: Vec<String>,
    /// Owner ids.
    pub owners: Vec<String>,
    /// States.
    pub states: Vec<StateFilter>,
}

impl Filter {
    /// True if the target is shown.
    pub fn target(&self, name: &str) -> bool {
        self.targets.is_empty() || self.targets.iter().any(|t| t == name)
    }

    /// True if the row is shown (its target already matched).
    pub fn row(&self, row: &Row<'_>) -> bool {
        (self.owners.is_empty() || self.owners.contains(&row.session.owner_id))
            && (self.states.is_empty() || self.states.iter().any(|s| row.is(*s)))
    }
}

/// One session as every renderer shows it.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// Target name.
    pub target: &'a str,
    /// The `kind` label.
    pub kind: &'static str,
    /// The session as polled.
    pub session: &'a Session,
    /// Its judgement.
    pub judgement: Judgement,
    /// Share done, 0–1: bytes for Vault, ingested files for a closed
    /// deepset session; `None` where there is no such figure.
    pub progress: Option<f64>,
    /// Observed upload rate, bytes per second (Vault, while measurable).
    pub rate: Option<f64>,
    /// Time until every byte is uploaded at `rate`, in milliseconds from
    /// the poll; only for a live session that moves and has bytes missing.
    pub eta_ms: Option<i64>,
    /// Time until expiry from `now`, in milliseconds; only while the
    /// session is live (a closed or expired session cannot expire again).
    pub expires_in_ms: Option<i64>,
    /// When the session was polled (what `eta_ms` counts from).
    pub polled_at: Option<UnixMillis>,
}

impl<'a> Row<'a> {
    /// Computes the row of a session polled with this judgement, `now`.
    pub fn new(
        target: &'a str,
        kind: &'static str,
        session: &'a Session,
        judgement: Judgement,
        now: UnixMillis,
    ) -> Row<'a> {
        let s = session;
        let progress = match s.files {
            Some(f) if s.state == SessionState::Closed && f.total > 0 => {
                Some((f.finished.saturating_add(f.failed)) as f64 / f.total as f64)
            }
            Some(_) => None,
            None => match s.size {
                Some(size) if size > 0 => Some(s.uploaded as f64 / size as f64),
                _ => None,
            },
        };
        let rate = judgement.rate.filter(|r| r.is_finite() && *r > 0.0);
        let remaining = s.size.map(|size| size.saturating_sub(s.uploaded));
        let eta_ms = match (rate, remaining) {
            (Some(r), Some(left))
                if s.state == SessionState::Active
                    && left > 0
                    && !judgement.stalled
                    && !judgement.awaiting_commit =>
            {
                // `as` saturates: an absurdly slow rate gives i64::MAX.
                Some((left as f64 / r * 1000.0) as i64)
            }
            _ => None,
        };
        let expires_in_ms = if s.is_live() {
            s.expires.map(|e| e.saturating_sub(now))
        } else {
            None
        };
        Row {
            target,
            kind,
            session,
            judgement,
            progress,
            rate,
            eta_ms,
            expires_in_ms,
            polled_at: None,
        }
    }

    /// True if the row is in this state.
    pub fn is(&self, f: StateFilter) -> bool {
        match f {
            StateFilter::Stalled => self.judgement.stalled,
            StateFilter::AtRisk => self.judgement.at_risk,
            StateFilter::AwaitingCommit => self.judgement.awaiting_commit,
            StateFilter::Is(s) => self.session.state == s,
        }
    }

    /// The machine names of the row's states, lifecycle state first
    /// (`["active", "stalled", "at_risk"]`).
    pub fn state_keys(&self) -> Vec<&'static str> {
        let mut v = vec![self.session.state.as_str()];
        for f in [
            StateFilter::Stalled,
            StateFilter::AtRisk,
            StateFilter::AwaitingCommit,
        ] {
            if self.is(f) {
                v.push(f.as_str());
            }
        }
        v
    }

    /// The state as people read it: the judgements ("stalled, at risk"),
    /// with the lifecycle state in front unless it is plain `active`.
    pub fn state_label(&self) -> String {
        let j = &self.judgement;
        let mut words = Vec::new();
        if j.stalled {
            words.push("stalled");
        }
        if j.at_risk {
            words.push("at risk");
        }
        if j.awaiting_commit {
            words.push("awaiting commit");
        }
        let state = self.session.state;
        if words.is_empty() {
            words.push(state.as_str());
        } else if state != SessionState::Active {
            words.insert(0, state.as_str());
        }
        words.join(", ")
    }

    /// True for the rows someone should look at first.
    pub fn urgent(&self) -> bool {
        self.judgement.stalled || self.judgement.at_risk
    }

    /// Sort key, most urgent first: stalled or at risk (soonest expiry
    /// first), then the other live sessions (soonest expiry first), then the
    /// closed ones by ingestion progress (files still pending first), then
    /// the expired ones (latest first).
    pub fn urgency(&self) -> (u8, i64, &'a str) {
        let s = self.session;
        let expiry = s.expires.unwrap_or(i64::MAX);
        let (rank, key) = if self.urgent() {
            (0, expiry)
        } else if s.is_live() {
            (1, expiry)
        } else if s.state == SessionState::Closed {
            // Per mille ingested; unknown counts go last among the closed.
            let done = self.progress.map_or(1001, |p| (p * 1000.0) as i64);
            (2, done)
        } else {
            (3, expiry.saturating_neg())
        };
        (rank, key, s.id.as_str())
    }

    /// "Name (id)", or the id alone.
    pub fn owner_label(&self) -> String {
        match &self.session.owner_name {
            Some(n) => format!("{n} ({})", self.session.owner_id),
            None => self.session.owner_id.clone(),
        }
    }
}

/// Rows of the snapshot that match, most urgent first across targets
/// (ties in target order); `total` is how many matched before paging.
#[derive(Debug)]
pub struct Selection<'a> {
    /// Targets shown (matching the target filter), by name.
    pub targets: Vec<&'a TargetView>,
    /// This page's rows.
    pub rows: Vec<Row<'a>>,
    /// Matching rows on every page.
    pub total: usize,
    /// This page, from 1.
    pub page: usize,
    /// Pages (at least 1).
    pub pages: usize,
}

/// Filters the snapshot, sorts and cuts out one page of `per_page` rows.
pub fn select<'a>(
    views: &'a [Arc<TargetView>],
    filter: &Filter,
    page: usize,
    per_page: usize,
    now: UnixMillis,
) -> Selection<'a> {
    let per_page = per_page.max(1);
    let targets: Vec<&TargetView> = views
        .iter()
        .map(|v| v.as_ref())
        .filter(|v| filter.target(&v.name))
        .collect();
    let mut rows: Vec<(usize, Row<'a>)> = Vec::new();
    for (i, v) in targets.iter().enumerate() {
        for (s, j) in v.pairs() {
            let mut row = Row::new(&v.name, v.kind, s, *j, now);
            row.polled_at = v.polled_sessions.as_ref().map(|p| p.at);
            if filter.row(&row) {
                rows.push((i, row));
            }
        }
    }
    let total = rows.len();
    let pages = total.div_ceil(per_page).max(1);
    let page = page.clamp(1, pages);
    // Only this page needs its order settled beyond the cut: sort all keys
    // (cheap: integers and an id) and keep the page.
    rows.sort_unstable_by(|(a, ra), (b, rb)| {
        let (ka, kb) = (ra.urgency(), rb.urgency());
        (ka.0, ka.1, a, ka.2).cmp(&(kb.0, kb.1, b, kb.2))
    });
    let rows = rows
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .map(|(_, r)| r)
        .collect();
    Selection {
        targets,
        rows,
        total,
        page,
        pages,
    }
}

/// Per-target counts for the headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sessions listed.
    pub sessions: usize,
    /// Stalled.
    pub stalled: usize,
    /// At risk.
    pub at_risk: usize,
    /// Awaiting commit.
    pub awaiting_commit: usize,
}

/// Counts a target's sessions.
pub fn counts(v: &TargetView) -> Counts {
    let mut c = Counts::default();
    for (_, j) in v.pairs() {
        c.sessions += 1;
        c.stalled += usize::from(j.stalled);
        c.at_risk += usize::from(j.at_risk);
        c.awaiting_commit += usize::from(j.awaiting_commit);
    }
    c
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Milliseconds as "2d 3h", "5m 10s", "-1h 2m" (past).
pub fn short_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let secs = ms.unsigned_abs() / 1000;
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let body = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    format!("{sign}{body}")
}

/// A share as "40.5%".
pub fn percent(p: f64) -> String {
    format!("{:.1}%", p * 100.0)
}

/// "2026-12-03 07:49:13 UTC" of a Unix-milliseconds time.
pub fn human_time(ms: UnixMillis) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// RFC 3339 (UTC, milliseconds) of a Unix-milliseconds time.
pub fn rfc3339(ms: UnixMillis) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::FileCounts;

    const MIN: i64 = 60_000;

    pub(crate) fn vault(id: &str, uploaded: u64, size: u64) -> Session {
        Session {
            id: id.into(),
            owner_id: "7".into(),
            owner_name: None,
            path: Some(format!("/u7/{id}.bin")),
            state: SessionState::Active,
            size: Some(size),
            uploaded,
            parts: 1,
            created: Some(0),
            expires: Some(100 * MIN),
            last_upload: Some(0),
            files: None,
        }
    }

    fn closed(id: &str, total: u64, finished: u64, expires: i64) -> Session {
        Session {
            id: id.into(),
            owner_id: "u".into(),
            owner_name: Some("Ada".into()),
            path: None,
            state: SessionState::Closed,
            size: None,
            uploaded: 0,
            parts: 0,
            created: Some(0),
            expires: Some(expires),
            last_upload: None,
            files: Some(FileCounts {
                total,
                finished,
                failed: 0,
            }),
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(40 * 1024 * 1024 * 1024), "40.0 GiB");
        assert_eq!(short_duration(93_600_000 + 120_000), "1d 2h");
        assert_eq!(short_duration(3_720_000), "1h 2m");
        assert_eq!(short_duration(65_000), "1m 5s");
        assert_eq!(short_duration(-7_200_000), "-2h 0m");
        assert_eq!(
            rfc3339(1_602_354_775_250).as_deref(),
            Some("2020-10-10T18:32:55.25Z")
        );
    }

    #[test]
    fn stalled_sessions_have_no_eta() {
        let s = vault("a", 50, 100);
        let moving = Judgement {
            rate: Some(10.0),
            ..Judgement::default()
        };
        assert_eq!(Row::new("t", "vault", &s, moving, 0).eta_ms, Some(5_000));
        let stalled = Judgement {
            stalled: true,
            ..moving
        };
        let r = Row::new("t", "vault", &s, stalled, 0);
        assert_eq!(r.eta_ms, None);
        assert_eq!(r.rate, Some(10.0), "the rate measured stays visible");
        assert_eq!(r.state_label(), "stalled");
    }

    #[test]
    fn a_new_empty_session_has_no_rate_and_no_eta() {
        let s = vault("new", 0, 100);
        let r = Row::new("t", "vault", &s, Judgement::default(), 0);
        assert_eq!((r.rate, r.eta_ms), (None, None));
        assert_eq!(r.progress, Some(0.0));
        let zero_rate = Judgement {
            rate: Some(0.0),
            ..Judgement::default()
        };
        let r = Row::new("t", "vault", &s, zero_rate, 0);
        assert_eq!((r.rate, r.eta_ms), (None, None));
        // A zero-byte declared size: no progress figure rather than NaN.
        let empty = vault("e", 0, 0);
        assert_eq!(Row::new("t", "vault", &empty, zero_rate, 0).progress, None);
    }

    #[test]
    fn closed_and_expired_sessions_do_not_expire_again() {
        let c = closed("c", 5, 5, -23 * 60 * MIN);
        let r = Row::new("t", "deepset", &c, Judgement::default(), 0);
        assert_eq!(r.expires_in_ms, None);
        let mut open = c.clone();
        open.state = SessionState::Open;
        open.expires = Some(20 * MIN);
        let r = Row::new("t", "deepset", &open, Judgement::default(), 0);
        assert_eq!(r.expires_in_ms, Some(20 * MIN));
    }

    #[test]
    fn most_urgent_first_and_closed_by_ingestion() {
        let mut stalled = vault("stalled", 1, 100);
        stalled.expires = Some(90 * MIN);
        let live = vault("live", 1, 100);
        let done = closed("done", 5, 5, 0);
        let half = closed("half", 6, 3, 0);
        let none = closed("none", 6, 0, 0);
        let mut expired = vault("expired", 1, 100);
        expired.state = SessionState::Expired;
        let view = TargetView {
            name: "t".into(),
            kind: "vault",
            measure: crate::model::Measure::SizedBytes,
            up: true,
            polled: true,
            last_success: Some(0),
            last_error: None,
            polled_sessions: Some(Arc::new(Polled {
                at: 0,
                judgements: vec![
                    Judgement::default(),
                    Judgement::default(),
                    Judgement::default(),
                    Judgement::default(),
                    Judgement {
                        stalled: true,
                        ..Judgement::default()
                    },
                    Judgement::default(),
                ],
                sessions: vec![done, expired, half, live, stalled, none],
            })),
        };
        let views = vec![Arc::new(view)];
        let sel = select(&views, &Filter::default(), 1, 500, 0);
        let ids: Vec<&str> = sel.rows.iter().map(|r| r.session.id.as_str()).collect();
        assert_eq!(ids, ["stalled", "live", "none", "half", "done", "expired"]);
        assert_eq!((sel.total, sel.pages), (6, 1));
        // Paging: two per page, the third page holds the last two.
        let sel = select(&views, &Filter::default(), 3, 2, 0);
        let ids: Vec<&str> = sel.rows.iter().map(|r| r.session.id.as_str()).collect();
        assert_eq!((ids, sel.page, sel.pages), (vec!["done", "expired"], 3, 3));
        // Filters.
        let f = Filter {
            states: vec![StateFilter::parse("Stalled").unwrap()],
            ..Filter::default()
        };
        assert_eq!(select(&views, &f, 1, 500, 0).total, 1);
        let f = Filter {
            states: vec![StateFilter::Is(SessionState::Closed)],
            owners: vec!["u".into()],
            targets: vec!["t".into()],
        };
        assert_eq!(select(&views, &f, 1, 500, 0).total, 3);
        let f = Filter {
            targets: vec!["other".into()],
            ..Filter::default()
        };
        let sel = select(&views, &f, 1, 500, 0);
        assert_eq!((sel.total, sel.targets.len()), (0, 0));
        assert_eq!(StateFilter::parse("at risk"), Some(StateFilter::AtRisk));
        assert_eq!(StateFilter::parse("bogus"), None);
    }

    #[test]
    fn cutting_keeps_unicode_whole() {
        assert_eq!(cut_end("Zoë Ångström", 5), "Zoë …");
        assert_eq!(cut_end("short", 5), "short");
        assert_eq!(cut_start("/a/b/ファイル.pdf", 9), "…ファイル.pdf");
        assert_eq!(cut_start("/a/b", 9), "/a/b");
        assert_eq!(cut_end("x", 0), "");
        assert_eq!(clean("a\u{1b}[2Jb\nc"), "a\u{FFFD}[2Jb\u{FFFD}c");
        let long = "é".repeat(100_000);
        assert_eq!(cut_end(&long, 40).chars().count(), 40);
        assert_eq!(cut_start(&long, 40).chars().count(), 40);
    }
}
