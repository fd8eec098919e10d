//! Fault injection: rules that make a simulated API misbehave on purpose
//! (gateway errors, broken bodies, hangs, rate limiting...), so clients can
//! be tested against them. [`FaultKind`] is shared by every simulated API;
//! [`FaultRule`] is generic over the API's endpoint enum ([`Endpoint`] for
//! Vault, [`DeepsetEndpoint`](super::DeepsetEndpoint) for deepset).
//!
//! Rules are armed in code ([`VaultControl::inject`](super::VaultControl::inject),
//! [`DeepsetControl::inject`](super::DeepsetControl::inject)) or, when the
//! simulator runs with its admin API, over HTTP (see [`super::admin`]).

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

/// The Vault API calls the simulator serves, for request counting and for
/// targeting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// `POST /api/{version}/auth`
    Auth,
    /// `GET /api/`
    ApiVersions,
    /// `POST /api/{version}/keep-alive`
    KeepAlive,
    /// `DELETE /api/{version}/session`
    Logout,
    /// `GET .../services/file_staging/upload`
    ListSessions,
    /// `GET .../services/file_staging/upload/{id}`
    SessionDetails,
    /// `GET .../services/file_staging/upload/{id}/parts`
    ListParts,
    /// `POST .../services/file_staging/upload`
    CreateSession,
    /// `PUT .../services/file_staging/upload/{id}`
    UploadPart,
    /// `POST .../services/file_staging/upload/{id}`
    CommitSession,
    /// `DELETE .../services/file_staging/upload/{id}`
    AbortSession,
    /// `GET .../objects/users/{id}` (Retrieve User)
    RetrieveUser,
}

impl Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [Endpoint; 12] = [
        Endpoint::Auth,
        Endpoint::ApiVersions,
        Endpoint::KeepAlive,
        Endpoint::Logout,
        Endpoint::ListSessions,
        Endpoint::SessionDetails,
        Endpoint::ListParts,
        Endpoint::CreateSession,
        Endpoint::UploadPart,
        Endpoint::CommitSession,
        Endpoint::AbortSession,
        Endpoint::RetrieveUser,
    ];

    /// The endpoint's name in the admin API, e.g. `list_sessions`.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Auth => "auth",
            Endpoint::ApiVersions => "api_versions",
            Endpoint::KeepAlive => "keep_alive",
            Endpoint::Logout => "logout",
            Endpoint::ListSessions => "list_sessions",
            Endpoint::SessionDetails => "session_details",
            Endpoint::ListParts => "list_parts",
            Endpoint::CreateSession => "create_session",
            Endpoint::UploadPart => "upload_part",
            Endpoint::CommitSession => "commit_session",
            Endpoint::AbortSession => "abort_session",
            Endpoint::RetrieveUser => "retrieve_user",
        }
    }
}

/// One fault to inject into a simulated API's responses; `E` is the API's
/// endpoint enum (Vault's [`Endpoint`] unless said otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule<E = Endpoint> {
    /// Which endpoint it hits; `None` hits every endpoint.
    pub endpoint: Option<E>,
    /// What goes wrong.
    pub kind: FaultKind,
    /// How many requests it hits before it disarms; `None` = until
    /// cleared ([`VaultControl::clear_faults`](super::VaultControl::clear_faults),
    /// [`DeepsetControl::clear_faults`](super::DeepsetControl::clear_faults)).
    pub times: Option<u32>,
}

impl<E> FaultRule<E> {
    /// A rule hitting `endpoint` (or every endpoint) until cleared.
    pub fn always(endpoint: Option<E>, kind: FaultKind) -> Self {
        Self {
            endpoint,
            kind,
            times: None,
        }
    }

    /// A rule hitting the next `times` matching requests.
    pub fn times(endpoint: Option<E>, kind: FaultKind, times: u32) -> Self {
        Self {
            endpoint,
            kind,
            times: Some(times),
        }
    }
}

/// The ways a simulated API can misbehave.
///
/// Faults act in front of the application, like a gateway: they fire
/// before authentication. On deepset endpoints, the Vault-only kinds mean:
/// `VaultFailure` → HTTP 500 `{"detail": message}` (an application error);
/// `HtmlSignIn` → HTTP 200 sign-in page (an SSO proxy);
/// `WrongVersionTrap` → ignored (deepset has no API versions to get wrong).
/// The other kinds mean the same on both APIs.
/// 401, 422 and 502 answers are [`HttpStatus`](Self::HttpStatus) faults,
/// built by [`unauthorized`](Self::unauthorized),
/// [`validation`](Self::validation) and [`bad_gateway`](Self::bad_gateway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// HTTP 200 with a Vault `FAILURE` body carrying this error type.
    VaultFailure {
        /// `errors[0].type`, e.g. `UNEXPECTED_ERROR`.
        error_type: String,
        /// `errors[0].message`.
        message: String,
    },
    /// A non-Vault answer, as from a gateway (e.g. 503 with an HTML body).
    /// An invalid status code is sent as 500.
    HttpStatus {
        /// HTTP status code.
        status: u16,
        /// `Content-Type` header.
        content_type: String,
        /// Body text.
        body: String,
    },
    /// HTTP 200 `text/html` sign-in page (an SSO proxy in the way).
    HtmlSignIn,
    /// HTTP 200 `application/json` whose body is not JSON.
    MalformedJson,
    /// HTTP 200 carrying the first half of the real response (the request is
    /// processed normally).
    TruncatedJson,
    /// HTTP 200 JSON-looking body of exactly this many bytes, with its
    /// `Content-Length` (valid JSON when `bytes` is at least the envelope's
    /// size, else a prefix of it).
    Oversized {
        /// Body size in bytes.
        bytes: usize,
    },
    /// Accepts the request and never answers (until the simulator shuts
    /// down, when the connection is closed).
    Hang,
    /// Closes the connection without an answer.
    Reset,
    /// Processes the request normally and answers after this delay.
    Delay(Duration),
    /// `INVALID_SESSION_ID` on every call but `/auth`, as a vault that does
    /// not serve the requested API version answers.
    WrongVersionTrap,
    /// HTTP 429 with `Retry-After: {retry_after}` and
    /// `{"detail":"Too many requests"}` (the request is not processed).
    TooManyRequests {
        /// Seconds in the `Retry-After` header.
        retry_after: u64,
    },
    /// Like [`Oversized`](Self::Oversized), but sent with
    /// `Transfer-Encoding: chunked` instead of a `Content-Length`, so a
    /// client learns the size only by reading. Both are generated while
    /// being sent: a body of hundreds of MiB costs the simulator no memory.
    OversizedChunked {
        /// Body size in bytes.
        bytes: usize,
    },
    /// Processes the request normally and adds fields no client knows
    /// (`sim_unknown_*`: an object, an array, `null`, a huge number, a
    /// string) to the answer's JSON object and to every object in its
    /// `data` (each list record, and the objects nested in them), as an API
    /// that grew new fields answers. Non-JSON answers pass unchanged.
    UnknownFields,
    /// Processes the request normally and appends `records`, as given, to
    /// the `data` array of the answer (adding their number to a numeric
    /// top-level `total`): records with missing, `null`, negative,
    /// fractional, huge or wrongly typed fields, unknown enum values, or
    /// that are not objects at all. Answers without a `data` array pass
    /// unchanged.
    OddRecords {
        /// Raw JSON records.
        records: Vec<Value>,
    },
    /// An error page that reflects the request, as some gateways and debug
    /// proxies answer: the `Authorization` header first, then the request
    /// body (a Vault login form with the password), the request line and
    /// the other headers (see [`reflection`]). The request is not
    /// processed. Vault: `status` 200 gives a `FAILURE` body whose
    /// `errors[0].message` and `responseMessage` are the reflection, any
    /// other status a `text/plain` page; deepset: `{"detail": "Invalid
    /// token: " + reflection}` with that status; S3: `AccessDenied` with
    /// that status, whose message is `Invalid request: ` + the secret
    /// access key of the request's key id (as a hostile store could; the
    /// key never travels) + its session token + the reflection.
    ReflectRequest {
        /// HTTP status code (an invalid one is sent as 500).
        status: u16,
    },
}

impl FaultKind {
    /// HTTP 401 `{"detail":"Not authenticated"}`, as FastAPI answers a
    /// rejected API key (e.g. one revoked between two polls).
    pub fn unauthorized() -> Self {
        Self::HttpStatus {
            status: 401,
            content_type: "application/json".to_owned(),
            body: r#"{"detail":"Not authenticated"}"#.to_owned(),
        }
    }

    /// HTTP 422 with a FastAPI validation body (an API that changed its
    /// parameter rules under the client).
    pub fn validation() -> Self {
        Self::HttpStatus {
            status: 422,
            content_type: "application/json".to_owned(),
            body: r#"{"detail":[{"type":"less_than_equal","loc":["query","limit"],"msg":"Input should be less than or equal to 50","input":"100","ctx":{"le":50}}]}"#.to_owned(),
        }
    }

    /// HTTP `status` with a gateway's `text/html` error page (e.g. 503 from
    /// a load balancer in front of the API).
    pub fn gateway_html(status: u16) -> Self {
        let reason = hyper::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        Self::HttpStatus {
            status,
            content_type: "text/html".to_owned(),
            body: format!(
                "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n</body>\r\n</html>\r\n"
            ),
        }
    }

    /// HTTP 502 with the HTML page of a load balancer (deepset answers this
    /// under load).
    pub fn bad_gateway() -> Self {
        Self::HttpStatus {
            status: 502,
            content_type: "text/html".to_owned(),
            body: "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n".to_owned(),
        }
    }
}

/// Most request body bytes a [`FaultKind::ReflectRequest`] page echoes.
pub(crate) const REFLECT_BODY_MAX: usize = 16 * 1024;

/// The text of a [`FaultKind::ReflectRequest`] answer: `Authorization`
/// first, then the body (cut to [`REFLECT_BODY_MAX`]), the request line and
/// the other headers, one per line.
pub(crate) fn reflection(
    method: &hyper::Method,
    uri: &hyper::Uri,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> String {
    let mut out = String::new();
    for v in headers.get_all(hyper::header::AUTHORIZATION) {
        out.push_str("Authorization: ");
        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
        out.push('\n');
    }
    if !body.is_empty() {
        out.push_str(&String::from_utf8_lossy(
            &body[..body.len().min(REFLECT_BODY_MAX)],
        ));
        out.push('\n');
    }
    out.push_str(&format!("{method} {uri}\n"));
    for (name, v) in headers {
        if name != hyper::header::AUTHORIZATION {
            out.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
    }
    out
}

/// An endpoint enum faults can target.
pub(crate) trait FaultTarget: Copy + PartialEq + 'static {
    /// Every endpoint.
    const ALL: &'static [Self];

    /// The endpoint's name in the admin API.
    fn name(self) -> &'static str;

    /// The endpoint called `name`, if any.
    fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.name() == name)
    }

    /// Whether a rule of `kind` passes this endpoint by (it neither fires
    /// nor is consumed).
    fn spared_by(self, _kind: &FaultKind) -> bool {
        false
    }
}

impl FaultTarget for Endpoint {
    const ALL: &'static [Self] = &Endpoint::ALL;

    fn name(self) -> &'static str {
        Endpoint::name(self)
    }

    fn spared_by(self, kind: &FaultKind) -> bool {
        // The version trap lets logins through: that is the trap.
        *kind == FaultKind::WrongVersionTrap && self == Endpoint::Auth
    }
}

/// The armed fault rules of a vault or deepset workspace.
#[derive(Debug)]
pub(crate) struct FaultSet<E = Endpoint> {
    rules: Mutex<Vec<FaultRule<E>>>,
}

impl<E> Default for FaultSet<E> {
    fn default() -> Self {
        Self {
            rules: Mutex::new(Vec::new()),
        }
    }
}

impl<E: FaultTarget> FaultSet<E> {
    pub(crate) fn push(&self, rule: FaultRule<E>) {
        if rule.times == Some(0) {
            return; // would never fire
        }
        lock(&self.rules).push(rule);
    }

    /// Disarms every rule; returns how many were armed.
    pub(crate) fn clear(&self) -> usize {
        let mut rules = lock(&self.rules);
        let n = rules.len();
        rules.clear();
        n
    }

    /// The armed rules, in firing order, with the uses they have left.
    pub(crate) fn snapshot(&self) -> Vec<FaultRule<E>>
    where
        E: Clone,
    {
        lock(&self.rules).clone()
    }

    /// Whether the rule that would fire next for `endpoint` reflects the
    /// request (so that the request can be kept for it).
    pub(crate) fn next_reflects(&self, endpoint: E) -> bool {
        lock(&self.rules)
            .iter()
            .find(|r| {
                (r.endpoint.is_none() || r.endpoint == Some(endpoint))
                    && !endpoint.spared_by(&r.kind)
            })
            .is_some_and(|r| matches!(r.kind, FaultKind::ReflectRequest { .. }))
    }

    /// The fault for a request to `endpoint`, if any; consumes one use of
    /// the first matching rule (rules fire in insertion order).
    pub(crate) fn take(&self, endpoint: E) -> Option<FaultKind> {
        let mut rules = lock(&self.rules);
        let idx = rules.iter().position(|r| {
            (r.endpoint.is_none() || r.endpoint == Some(endpoint)) && !endpoint.spared_by(&r.kind)
        })?;
        let kind = rules[idx].kind.clone();
        if let Some(n) = rules[idx].times.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rules.remove(idx);
            }
        }
        Some(kind)
    }
}

/// Names of the fields [`FaultKind::UnknownFields`] adds.
pub const UNKNOWN_FIELD_PREFIX: &str = "sim_unknown_";

/// The fields [`FaultKind::UnknownFields`] adds to an object (those it does
/// not have yet).
fn add_unknown_to(obj: &mut Map<String, Value>) {
    let extra = [
        (
            "object",
            serde_json::json!({"nested": [1, "two", null, {"deep": true}], "enum": "NEW_VALUE"}),
        ),
        ("array", serde_json::json!([{"a": 1}, [], "x"])),
        ("null", Value::Null),
        ("number", serde_json::json!(1.5e300)),
        ("string", Value::String("\u{2603} added later".to_owned())),
    ];
    for (name, value) in extra {
        obj.entry(format!("{UNKNOWN_FIELD_PREFIX}{name}"))
            .or_insert(value);
    }
}

/// Adds unknown fields to `value` if it is an object and to the objects it
/// holds, `depth` levels deep (arrays do not count as a level).
fn add_unknown_deep(value: &mut Value, depth: usize) {
    match value {
        Value::Object(obj) => {
            if depth > 0 {
                for v in obj.values_mut() {
                    add_unknown_deep(v, depth - 1);
                }
            }
            add_unknown_to(obj);
        }
        Value::Array(items) => {
            for v in items {
                add_unknown_deep(v, depth);
            }
        }
        _ => {}
    }
}

/// The body of an answer with [`FaultKind::UnknownFields`] applied; `None`
/// if it is not a JSON object (then it is sent unchanged).
pub(crate) fn with_unknown_fields(body: &[u8]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    if let Some(data) = obj.get_mut("data") {
        // Records and the objects inside them (e.g. deepset's `created_by`).
        add_unknown_deep(data, 1);
    }
    add_unknown_to(obj);
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// The body of an answer with [`FaultKind::OddRecords`] applied; `None` if
/// it has no `data` array (then it is sent unchanged).
pub(crate) fn with_odd_records(body: &[u8], records: &[Value]) -> Option<Bytes> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object_mut()?;
    obj.get_mut("data")?
        .as_array_mut()?
        .extend(records.iter().cloned());
    if let Some(total) = obj.get_mut("total") {
        if let Some(n) = total.as_u64() {
            *total = Value::from(n.saturating_add(records.len() as u64));
        }
    }
    serde_json::to_vec(&value).ok().map(Bytes::from)
}

/// Locks a mutex, recovering from poisoning (a panicked holder cannot leave
/// these plain collections in an unsafe state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_and_disarm() {
        let f = FaultSet::default();
        f.push(FaultRule::times(
            Some(Endpoint::ListSessions),
            FaultKind::MalformedJson,
            2,
        ));
        f.push(FaultRule::always(None, FaultKind::WrongVersionTrap));
        assert_eq!(
            f.take(Endpoint::ListSessions),
            Some(FaultKind::MalformedJson)
        );
        assert_eq!(f.take(Endpoint::Auth), None);
        assert_eq!(
            f.take(Endpoint::ListSessions),
            Some(FaultKind::MalformedJson)
        );
        assert_eq!(
            f.take(Endpoint::ListSessions),
            Some(FaultKind::WrongVersionTrap)
        );
        f.clear();
        assert_eq!(f.take(Endpoint::ListSessions), None);
        f.push(FaultRule::times(None, FaultKind::Reset, 0));
        assert_eq!(f.take(Endpoint::Auth), None);
    }

    #[test]
    fn snapshot_and_clear_count() {
        let f = FaultSet::default();
        f.push(FaultRule::times(None, FaultKind::Hang, 2));
        f.push(FaultRule::always(
            Some(Endpoint::Auth),
            FaultKind::UnknownFields,
        ));
        assert_eq!(f.take(Endpoint::ListSessions), Some(FaultKind::Hang));
        let rules = f.snapshot();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].times, Some(1));
        assert_eq!(f.clear(), 2);
        assert!(f.snapshot().is_empty());
    }

    #[test]
    fn endpoint_names_round_trip() {
        for e in Endpoint::ALL {
            assert_eq!(<Endpoint as FaultTarget>::parse(e.name()), Some(e));
        }
        assert_eq!(<Endpoint as FaultTarget>::parse("nope"), None);
    }

    #[test]
    fn unknown_fields_reach_records_and_nested_objects() {
        let body =
            br#"{"responseStatus":"SUCCESS","data":[{"id":"a","created_by":{"user_id":"u"}},3]}"#;
        let out: Value = serde_json::from_slice(&with_unknown_fields(body).unwrap()).unwrap();
        assert_eq!(out["responseStatus"], "SUCCESS");
        assert!(out["sim_unknown_null"].is_null());
        assert!(out.get("sim_unknown_null").is_some());
        assert_eq!(out["data"][0]["id"], "a");
        assert!(out["data"][0]["sim_unknown_object"].is_object());
        assert!(out["data"][0]["created_by"]["sim_unknown_array"].is_array());
        assert_eq!(out["data"][1], 3);
        assert_eq!(with_unknown_fields(b"<html>"), None);
        assert_eq!(with_unknown_fields(b"[1]"), None);
    }

    #[test]
    fn odd_records_are_appended_and_counted() {
        let body = br#"{"data":[{"id":"a"}],"has_more":false,"total":1}"#;
        let odd = [serde_json::json!("junk"), serde_json::json!({"id": -1})];
        let out: Value = serde_json::from_slice(&with_odd_records(body, &odd).unwrap()).unwrap();
        assert_eq!(out["data"].as_array().unwrap().len(), 3);
        assert_eq!(out["data"][1], "junk");
        assert_eq!(out["total"], 3);
        assert_eq!(with_odd_records(br#"{"data":{}}"#, &odd), None);
    }
}
