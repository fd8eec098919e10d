//! The upstream-neutral view of an upload session that the poller, the
//! analytics and the metrics work on. Each client converts its wire types
//! into these.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch (Vault timestamps have millisecond
/// precision; 64 bits hold them for 292 million years).
pub type UnixMillis = i64;

/// What a kind counts a session's progress in (each kind's
/// `Kind::measure`); decides which per-owner families are
/// written and which columns the session views show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Bytes and parts of one file whose size is declared up front:
    /// `uploaded_bytes`, `uploaded_parts`, `size_bytes`,
    /// `awaiting_commit_sessions` and `at_risk_sessions` are written.
    SizedBytes,
    /// Bytes and parts of one file whose size is not known until it is
    /// complete: `uploaded_bytes` and `uploaded_parts` are written, not the
    /// families that need the size.
    Bytes,
    /// Files of a session and their ingestion: `ingested_files` is written.
    Files,
}

impl Measure {
    /// True if sessions count bytes and parts.
    pub fn counts_bytes(self) -> bool {
        matches!(self, Measure::SizedBytes | Measure::Bytes)
    }

    /// True if sessions declare their size (progress, ETA, at risk).
    pub fn has_size(self) -> bool {
        self == Measure::SizedBytes
    }
}

/// State of a session, the `state` label of `upload_session_sessions`.
/// Which states a kind reports is the kind's choice; the meanings are
/// shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    /// Listed and receiving data, for upstreams that do not tell open from
    /// closed.
    Active,
    /// Past its expiration date (listed still, or listed as expired).
    Expired,
    /// Explicitly open: files may still be added.
    Open,
    /// Closed by its client: no more data, the upstream is processing it.
    Closed,
}

impl SessionState {
    /// Active or open: the session can still receive data.
    pub fn is_live(self) -> bool {
        matches!(self, SessionState::Active | SessionState::Open)
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Active => "active",
            SessionState::Expired => "expired",
            SessionState::Open => "open",
            SessionState::Closed => "closed",
        }
    }
}

/// One upload session as the exporter sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// Upstream id; used only for history, never as a label.
    pub id: String,
    /// The upstream's id of the user who created it; `"unknown"` if absent.
    pub owner_id: String,
    /// Display name, where the API gives one.
    pub owner_name: Option<String>,
    /// Path or key of the file being uploaded, where there is one file.
    pub path: Option<String>,
    /// State at poll time.
    pub state: SessionState,
    /// Declared size in bytes, where the upstream knows it in advance.
    pub size: Option<u64>,
    /// Bytes uploaded so far (kinds whose [`Measure`] counts bytes).
    pub uploaded: u64,
    /// Parts uploaded so far (kinds whose [`Measure`] counts bytes).
    pub parts: u64,
    /// Creation time.
    pub created: Option<UnixMillis>,
    /// Expiry time.
    pub expires: Option<UnixMillis>,
    /// Time of the last uploaded part, where the upstream tells it.
    pub last_upload: Option<UnixMillis>,
    /// Files and their ingestion ([`Measure::Files`] kinds), where known.
    pub files: Option<FileCounts>,
}

impl Session {
    /// True while the session can still receive data.
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// The figure whose growth means "progress": bytes, or files for an
    /// open session that counts files and ingested files for a closed one.
    pub fn progress(&self) -> u64 {
        match (self.state, self.files) {
            (SessionState::Closed, Some(f)) => f.finished.saturating_add(f.failed),
            (_, Some(f)) => f.total,
            (_, None) => self.uploaded,
        }
    }
}

/// The files of a session that counts files ([`Measure::Files`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileCounts {
    /// Files uploaded to the session.
    pub total: u64,
    /// Files ingested.
    pub finished: u64,
    /// Files whose ingestion failed.
    pub failed: u64,
}

impl FileCounts {
    /// Files not ingested yet.
    pub fn pending(&self) -> u64 {
        self.total
            .saturating_sub(self.finished)
            .saturating_sub(self.failed)
    }
}

/// Parses an RFC 3339 timestamp (`...Z` or `...+00:00`, any fraction) into
/// Unix milliseconds.
pub fn parse_timestamp(s: &str) -> Option<UnixMillis> {
    let t = OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The current time in Unix milliseconds.
pub fn now_millis() -> UnixMillis {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_both_forms() {
        assert_eq!(
            parse_timestamp("2020-10-10T18:32:55.000Z"),
            Some(1_602_354_775_000)
        );
        assert_eq!(
            parse_timestamp("2020-10-10T18:32:55.250Z"),
            Some(1_602_354_775_250)
        );
        assert_eq!(
            parse_timestamp("2020-10-10T18:32:55+00:00"),
            Some(1_602_354_775_000)
        );
        assert_eq!(
            parse_timestamp("2020-10-10T20:32:55+02:00"),
            Some(1_602_354_775_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
