//! deepset's wire format: responses, FastAPI error bodies, timestamps.

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use crate::http::{HttpResponse, SimBody};

/// `Content-Type` of every API answer (FastAPI's `JSONResponse`).
pub(crate) const JSON: &str = "application/json";

/// A response before it becomes hyper's type.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    /// `None` for bodiless answers (204).
    pub(crate) content_type: Option<String>,
    pub(crate) body: Bytes,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// A generated body sent instead of `body` (oversized faults).
    pub(crate) generated: Option<SimBody>,
}

impl Reply {
    /// `value` as JSON.
    pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Self {
        Self::raw(status, JSON, to_json(value))
    }

    /// Any body.
    pub(crate) fn raw(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            status,
            content_type: Some(content_type.to_owned()),
            body,
            headers: Vec::new(),
            generated: None,
        }
    }

    /// HTTP 200 JSON whose body is generated while it is sent.
    pub(crate) fn generated(body: SimBody) -> Self {
        Self {
            generated: Some(body),
            ..Self::raw(StatusCode::OK, JSON, Bytes::new())
        }
    }

    /// `204 No Content`.
    pub(crate) fn no_content() -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            content_type: None,
            body: Bytes::new(),
            headers: Vec::new(),
            generated: None,
        }
    }

    /// FastAPI's `HTTPException` body: `{"detail": "..."}`.
    pub(crate) fn detail(status: StatusCode, detail: &str) -> Self {
        Self::json(status, &Detail { detail })
    }

    /// Adds a header (dropped later if `value` is not valid header text).
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn into_response(self) -> HttpResponse {
        let body = self.generated.unwrap_or_else(|| SimBody::whole(self.body));
        let mut resp = Response::new(body);
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if let Some(ct) = self.content_type {
            if let Ok(v) = HeaderValue::from_str(&ct) {
                h.insert(CONTENT_TYPE, v);
            }
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        resp
    }
}

#[derive(Serialize)]
struct Detail<'a> {
    detail: &'a str,
}

/// Serializes a body. These plain structs cannot fail to serialize; the
/// fallback keeps that an invariant rather than a panic.
pub(crate) fn to_json<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"detail":"Internal Server Error"}"#))
}

/// An answer other than success, as the API gives it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 401: no, malformed or unknown API key.
    #[error("not authenticated")]
    Unauthenticated,
    /// 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404.
    #[error("not found: {0}")]
    NotFound(String),
    /// 406: too many open sessions.
    #[error("not acceptable: {0}")]
    NotAcceptable(String),
    /// 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 422 with FastAPI's `detail` list.
    #[error("{} validation error(s)", .0.len())]
    Validation(Vec<Problem>),
}

impl ApiError {
    pub(crate) fn reply(&self) -> Reply {
        match self {
            // FastAPI's HTTPBearer answer (newer versions: 401 with a
            // challenge).
            Self::Unauthenticated => Reply::detail(StatusCode::UNAUTHORIZED, "Not authenticated")
                .with_header("www-authenticate", "Bearer"),
            Self::Forbidden(m) => Reply::detail(StatusCode::FORBIDDEN, m),
            Self::NotFound(m) => Reply::detail(StatusCode::NOT_FOUND, m),
            Self::NotAcceptable(m) => Reply::detail(StatusCode::NOT_ACCEPTABLE, m),
            Self::Conflict(m) => Reply::detail(StatusCode::CONFLICT, m),
            Self::Validation(problems) => Reply::json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &ValidationBody { detail: problems },
            ),
        }
    }
}

impl From<Vec<Problem>> for ApiError {
    fn from(problems: Vec<Problem>) -> Self {
        Self::Validation(problems)
    }
}

#[derive(Serialize)]
struct ValidationBody<'a> {
    detail: &'a [Problem],
}

/// One entry of a FastAPI 422 `detail` (pydantic's error, in its field
/// order).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Problem {
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) loc: Vec<Loc>,
    pub(crate) msg: String,
    pub(crate) input: Value,
    /// Boxed: keeps `Result<_, Problem>` small.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ctx: Option<Box<Value>>,
}

/// An element of `loc`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Loc {
    Name(String),
    Index(usize),
}

impl Problem {
    pub(crate) fn new(
        kind: &'static str,
        loc: &[&str],
        msg: impl Into<String>,
        input: Value,
        ctx: Option<Value>,
    ) -> Self {
        Self {
            kind,
            loc: loc.iter().map(|s| Loc::Name((*s).to_owned())).collect(),
            msg: msg.into(),
            input,
            ctx: ctx.map(Box::new),
        }
    }

    /// A custom validator's complaint (pydantic `value_error`; FastAPI
    /// renders the exception in `ctx` as `{}`).
    pub(crate) fn value_error(loc: &[&str], msg: &str, input: Value) -> Self {
        Self::new(
            "value_error",
            loc,
            format!("Value error, {msg}"),
            input,
            Some(serde_json::json!({ "error": {} })),
        )
    }
}

/// Drops sub-microsecond precision (the API's timestamps have
/// microseconds).
pub(crate) fn truncate_us(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(t.microsecond() * 1_000).unwrap_or(t)
}

/// `2025-03-14T09:26:53.123456Z`, or `...123456+00:00` for `legacy`
/// (older responses).
pub(crate) fn format_ts(t: OffsetDateTime, legacy: bool) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond(),
        if legacy { "+00:00" } else { "Z" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn timestamps_have_micros_and_zone() {
        let t = datetime!(2025-03-14 10:26:53.123456789 +01:00);
        assert_eq!(format_ts(t, false), "2025-03-14T09:26:53.123456Z");
        assert_eq!(format_ts(t, true), "2025-03-14T09:26:53.123456+00:00");
        assert_eq!(
            format_ts(datetime!(2025-01-02 03:04:05 UTC), false),
            "2025-01-02T03:04:05.000000Z"
        );
        assert_eq!(truncate_us(t).nanosecond(), 123_456_000);
    }

    #[test]
    fn validation_body_is_fastapis() {
        let p = Problem::new(
            "less_than_equal",
            &["query", "limit"],
            "Input should be less than or equal to 100",
            json!("101"),
            Some(json!({"le": 100})),
        );
        let r = ApiError::Validation(vec![p]).reply();
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            r.body,
            Bytes::from_static(
                br#"{"detail":[{"type":"less_than_equal","loc":["query","limit"],"msg":"Input should be less than or equal to 100","input":"101","ctx":{"le":100}}]}"#
            )
        );
        let v = Problem::value_error(&["query", "after"], "nope", json!("x"));
        assert_eq!(
            serde_json::to_value(&v).unwrap_or_default(),
            json!({"type": "value_error", "loc": ["query", "after"], "msg": "Value error, nope",
                   "input": "x", "ctx": {"error": {}}})
        );
    }
}
