//! deepset Cloud's JSON, as serde types (seed 004 and the documented
//! session-status and files endpoints). Enums are kept as strings: the API
//! adds values over time (EXPIRED in 2025; TEMPORARY is not in the SDK).

use serde::Deserialize;

pub use crate::upstream::lenient::Lenient;
use crate::upstream::lenient::{lenient_u64, null_false};

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
    Lenient::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_page_decodes_leniently() {
        let p: SessionPage = serde_json::from_str(
            r#"{"data":[{"session_id":"s1","status":"OPEN","created_by":{"user_id":"u1"}},7],
                "has_more":true,"total":"12"}"#,
        )
        .unwrap();
        assert_eq!((p.data.items.len(), p.data.skipped), (1, 1));
        assert_eq!(p.data.items[0].session_id.as_deref(), Some("s1"));
        assert_eq!(
            p.data.items[0]
                .created_by
                .as_ref()
                .and_then(|u| u.user_id.as_deref()),
            Some("u1")
        );
        assert!(p.has_more);
        assert_eq!(p.total, Some(12));
        // Missing or null: empty, no more, total unknown.
        for body in [r#"{}"#, r#"{"data":null,"has_more":null,"total":null}"#] {
            let p: SessionPage = serde_json::from_str(body).unwrap();
            assert_eq!(
                (p.data.items.len(), p.data.skipped, p.has_more, p.total),
                (0, 0, false, None),
                "{body}"
            );
        }
        let p: SessionPage = serde_json::from_str(r#"{"has_more":false,"total":3}"#).unwrap();
        assert_eq!((p.has_more, p.total), (false, Some(3)));
    }

    #[test]
    fn counts_accept_numbers_and_digit_strings_only() {
        let s: SessionStatus = serde_json::from_str(
            r#"{"session_id":"s","ingestion_status":{"failed_files":2,"finished_files":" 40 "}}"#,
        )
        .unwrap();
        assert_eq!(
            s.ingestion_status,
            Some(IngestionStatus {
                failed_files: Some(2),
                finished_files: Some(40),
            })
        );
        for v in ["-3", "2.5", "\"many\"", "false", "[]"] {
            let f: FilePage = serde_json::from_str(&format!(r#"{{"total":{v}}}"#)).unwrap();
            assert_eq!(f.total, None, "{v}");
        }
        let f: FilePage = serde_json::from_str(r#"{"total":1,"has_more":true}"#).unwrap();
        assert_eq!((f.total, f.has_more), (Some(1), true));
    }

    #[test]
    fn validation_summary_names_each_problem() {
        let v: ValidationError = serde_json::from_str(
            r#"{"detail":[
                {"loc":["query","limit"],"msg":"Input should be less than or equal to 100","type":"less_than_equal"},
                {"loc":["body",0,"name"],"msg":"Field required","type":"missing"}]}"#,
        )
        .unwrap();
        assert_eq!(
            v.summary(),
            "query.limit: Input should be less than or equal to 100; body.0.name: Field required"
        );
        assert_eq!(v.detail[1].error_type, "missing");
        let empty: ValidationError = serde_json::from_str("{}").unwrap();
        assert_eq!(empty.summary(), "");
    }
}
