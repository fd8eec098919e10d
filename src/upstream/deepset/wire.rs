//! deepset Cloud's JSON, as serde types (seed 004 and the documented
//! session-status and files endpoints). Enums are kept as strings: the API
//! adds values over time (EXPIRED in 2025; TEMPORARY is not in the SDK).

use serde::{Deserialize, Deserializer};

pub use crate::upstream::vault::wire::Lenient;

/// `PaginatedResult[Session]` of Get Upload Sessions.
#[derive(Debug, Deserialize)]
pub struct SessionPage {
    /// The sessions of this page, decoded one by one.
    #[serde(default = "empty_lenient")]
    pub data: Lenient<Session>,
    /// More results after this page.
    #[serde(default, deserialize_with = "null_false")]
    pub has_more: bool,
    /// Total matching the query.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total: Option<u64>,
}

fn empty_lenient<T>() -> Lenient<T> {
    Lenient {
        items: Vec::new(),
        skipped: 0,
    }
}

/// One upload session.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Session {
    /// UUID of the session.
    pub session_id: Option<String>,
    /// The user who created it.
    pub created_by: Option<User>,
    /// Creation time (`...Z` or `...+00:00`).
    pub created_at: Option<String>,
    /// Expiry time; null for sessions that do not expire.
    pub expires_at: Option<String>,
    /// `OPEN`, `CLOSED`, `EXPIRED`, or a value added later.
    pub status: Option<String>,
    /// `KEEP`, `OVERWRITE`, `FAIL`, `TEMPORARY`, ...
    pub write_mode: Option<String>,
}

/// `created_by`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct User {
    /// UUID of the user.
    pub user_id: Option<String>,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
}

/// Get Session Status.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct SessionStatus {
    /// UUID of the session.
    pub session_id: Option<String>,
    /// Expiry time.
    pub expires_at: Option<String>,
    /// Files ingested so far.
    pub ingestion_status: Option<IngestionStatus>,
}

/// `ingestion_status` of a session.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct IngestionStatus {
    /// Files whose ingestion failed.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub failed_files: Option<u64>,
    /// Files ingested.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub finished_files: Option<u64>,
}

/// A page of a session's files; only `total` is used (with `limit=1`).
#[derive(Debug, Deserialize)]
pub struct FilePage {
    /// Files matching the query.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub total: Option<u64>,
    /// More files after this page.
    #[serde(default, deserialize_with = "null_false")]
    pub has_more: bool,
}

/// FastAPI's 422 body.
#[derive(Debug, Deserialize)]
pub struct ValidationError {
    /// The problems.
    #[serde(default)]
    pub detail: Vec<ValidationDetail>,
}

/// One entry of `detail`.
#[derive(Debug, Deserialize)]
pub struct ValidationDetail {
    /// Where: e.g. `["query", "limit"]`.
    #[serde(default)]
    pub loc: Vec<serde_json::Value>,
    /// What.
    #[serde(default)]
    pub msg: String,
    /// Error type, e.g. `less_than_equal`.
    #[serde(rename = "type", default)]
    pub error_type: String,
}

impl ValidationError {
    /// `query.limit: Input should be less than or equal to 100; ...`
    pub fn summary(&self) -> String {
        self.detail
            .iter()
            .map(|d| {
                let loc = d
                    .loc
                    .iter()
                    .map(|l| match l {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(".");
                format!("{loc}: {}", d.msg)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

fn null_false<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(false))
}
