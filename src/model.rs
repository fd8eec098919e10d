//! The upstream-neutral view of an upload session that the poller, the
//! analytics and the metrics work on. Each client converts its wire types
//! into these.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch (Vault timestamps have millisecond
/// precision; 64 bits hold them for 292 million years).
pub type UnixMillis = i64;

/// State of a session, the `state` label of `upload_session_sessions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SessionState {
    /// Vault: listed and not past its expiration date.
    Active,
    /// Listed but past its expiration date (Vault), or EXPIRED (deepset).
    Expired,
    /// deepset: OPEN.
    Open,
    /// deepset: CLOSED.
    Closed,
}

impl SessionState {
    /// Active (Vault) or open (deepset): the session can still receive data.
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
    /// Vault `owner` or deepset `created_by.user_id`; `"unknown"` if absent.
    pub owner_id: String,
    /// Display name, where the API gives one.
    pub owner_name: Option<String>,
    /// Path of the file being uploaded (Vault).
    pub path: Option<String>,
    /// State at poll time.
    pub state: SessionState,
    /// Declared size in bytes (Vault).
    pub size: Option<u64>,
    /// Bytes uploaded so far (Vault).
    pub uploaded: u64,
    /// Parts uploaded so far (Vault).
    pub parts: u64,
    /// Creation time.
    pub created: Option<UnixMillis>,
    /// Expiry time.
    pub expires: Option<UnixMillis>,
    /// Time of the last uploaded part (Vault).
    pub last_upload: Option<UnixMillis>,
    /// Files and their ingestion (deepset), where known.
    pub files: Option<FileCounts>,
}

impl Session {
    /// True while the session can still receive data.
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// The figure whose growth means "progress": bytes for Vault, files
    /// for an open deepset session, ingested files for a closed one.
    pub fn progress(&self) -> u64 {
        match (self.state, self.files) {
            (SessionState::Closed, Some(f)) => f.finished.saturating_add(f.failed),
            (_, Some(f)) => f.total,
            (_, None) => self.uploaded,
        }
    }
}

/// The files of a deepset session.
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
