//! The simulator's admin API: arms and clears faults, and changes a few
//! vault states, over HTTP while the simulator runs — so that a client
//! (an exporter under test, a person with `curl`) can be watched as its
//! upstream breaks and heals.
//!
//! It is served under `/_sim` only when enabled: `upload_session_sim
//! --admin`, or [`SimOptions::admin`](super::SimOptions::admin) in code.
//! Otherwise every `/_sim` path answers 404 like any unknown path; the
//! exporter's `--demo` never enables it. It has **no authentication**:
//! enable it only on a loopback or test network.
//!
//! Every answer is JSON; errors are `{"error": "..."}` with 400 (a bad
//! request, saying what is wrong), 404 (unknown vault, workspace or path),
//! 405 (wrong method) or 413 (body over 1 MiB).
//!
//! # `POST /_sim/faults`: arm a fault
//!
//! ```json
//! {"api": "vault", "vault": "main", "endpoint": "list_sessions",
//!  "kind": "http_status", "status": 503, "times": 3}
//! ```
//!
//! - `api`: `"vault"` (then `vault` names the vault, as in
//!   `/vaults/{name}`), `"deepset"` (then `workspace` names the
//!   workspace) or `"s3"` (then `bucket`, optional, names the bucket;
//!   without it the fault hits requests to every bucket and ListBuckets).
//! - `endpoint` (optional; absent = every endpoint): Vault `auth`,
//!   `api_versions`, `keep_alive`, `logout`, `list_sessions`,
//!   `session_details`, `list_parts`, `create_session`, `upload_part`,
//!   `commit_session`, `abort_session`, `retrieve_user`; deepset
//!   `list_sessions`, `create_session`, `session_status`, `list_files`,
//!   `close_session`, `storage_upload`; S3 `list_buckets`,
//!   `create_bucket`, `head_bucket`, `delete_bucket`,
//!   `list_multipart_uploads`, `get_lifecycle`, `put_lifecycle`,
//!   `delete_lifecycle`, `create_multipart_upload`, `upload_part`,
//!   `list_parts`, `complete_multipart_upload`, `abort_multipart_upload`,
//!   `put_object`, `get_object`, `delete_object`.
//! - `times` (optional; absent = until cleared): how many matching
//!   requests the fault hits before it disarms (at least 1).
//! - `kind` and its fields ([`FaultKind`] has the exact behaviour):
//!
//! | `kind` | fields | answer |
//! | --- | --- | --- |
//! | `vault_failure` | `error_type`, `message` (optional) | Vault: HTTP 200 `FAILURE` with that error type (`USERNAME_OR_PASSWORD_INCORRECT`, `USER_LOCKED_OUT`, `API_LIMIT_EXCEEDED`, `INVALID_SESSION_ID`, any new type...); deepset: 500 `{"detail": message}` |
//! | `http_status` | `status`, `content_type` (default `text/html`), `body` (default a gateway's HTML error page) | that status and body |
//! | `html_sign_in` | | HTTP 200 `text/html` sign-in page |
//! | `malformed_json` | | HTTP 200 JSON that does not parse |
//! | `truncated_json` | | the first half of the real answer |
//! | `oversized` | `bytes` | HTTP 200 JSON-looking body of that size, with `Content-Length` |
//! | `oversized_chunked` | `bytes` | the same without `Content-Length` (chunked) |
//! | `hang` | | never answers |
//! | `reset` | | closes the connection without an answer |
//! | `delay` | `ms` | the real answer, that much later |
//! | `wrong_version_trap` | | Vault only: `INVALID_SESSION_ID` on every call but `/auth` |
//! | `too_many_requests` | `retry_after` (seconds) | HTTP 429 with `Retry-After` |
//! | `unknown_fields` | | the real answer with fields no client knows added to it and to its records |
//! | `odd_records` | `records` (a JSON array) | the real answer with these records appended to its `data` list |
//! | `unauthorized` | | HTTP 401 `{"detail":"Not authenticated"}` |
//! | `validation` | | HTTP 422 with a FastAPI validation body |
//! | `bad_gateway` | | HTTP 502 with a load balancer's HTML page |
//! | `reflect_request` | `status` | an error page echoing the request: `Authorization` header, body (e.g. the login form with the password), request line, other headers; Vault `status` 200: a `FAILURE` whose message is the echo; deepset: `{"detail": "Invalid token: " + echo}`; S3: an `AccessDenied` XML error whose message is the echo, preceded (as a hostile store could) by the secret access key of the request's key id and its session token |
//! | `s3_error` | `code`, `message` (optional) | S3: an XML error with that code and S3's status for it (`InternalError` 500, `SlowDown` 503, `AccessDenied` 403...; unknown codes answer `InternalError` 500); listed as `vault_failure` (on Vault and deepset it means that) |
//! | `slow_down` | `retry_after` (seconds) | S3: 503 `SlowDown` with `Retry-After`; listed as `too_many_requests` (the same fault: 429 on Vault and deepset) |
//!
//! On S3, `malformed_json` (alias `malformed_xml`) answers HTTP 200 XML
//! that does not parse, `truncated_json` (alias `truncated_xml`) the first
//! half of the real XML, `oversized`/`oversized_chunked` a well-formed
//! listing of that size, `unknown_fields` adds unknown elements to the
//! document and each `Upload`/`Part`, `odd_records` inserts its string
//! records as raw XML before the root's closing tag, `html_sign_in` an
//! HTML page, `unauthorized`/`validation`/`bad_gateway`/`http_status` their
//! status and body as given.
//!
//! Answer: 201 with the armed rule as `GET` lists it, plus `api` and
//! `vault`/`workspace`.
//!
//! # `GET /_sim/faults`: list armed faults
//!
//! `{"vaults": {"main": [rule, ...]}, "deepset": {"default": [...]},
//! "s3": {"*": [...], "bucket-name": [...]}}`, every vault, workspace and
//! bucket (`*`: the faults for every S3 request), rules in firing order; a rule is `{"endpoint":
//! name or null, "times": uses left or null, "kind": ..., fields...}`.
//!
//! # `DELETE /_sim/faults`: clear faults
//!
//! Clears every fault of every vault, workspace and bucket, or with
//! `?api=vault&vault=main` / `?api=deepset&workspace=default` /
//! `?api=s3` (every S3 fault) / `?api=s3&bucket=name` only those of one. Answer: `{"cleared": number of rules removed}`.
//!
//! # `POST /_sim/actions`: change a vault's state
//!
//! `{"api": "vault", "vault": "main", "action": ...}` with `action`:
//! - `invalidate_login_sessions`: ends every API session, as Vault's
//!   inactivity timeout does; the next call with an old session gets
//!   `INVALID_SESSION_ID` once (clients log in again).
//! - `set_burst_remaining` with `remaining` and optionally
//!   `response_delay_ms`: starts a burst window now with `remaining` calls
//!   left (`X-VaultAPI-BurstLimitRemaining`); at 0 every response is
//!   delayed and carries `X-VaultAPI-ResponseDelay`.
//! - `set_response_delay` with `ms`: that delay, from now on.
//! - `unlock_user` with `username`: unlocks a locked-out user.
//!
//! Answer: `{"done": action}`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::deepset::{Deepset, DeepsetControl, DeepsetEndpoint};
use super::faults::{Endpoint, FaultKind, FaultRule, FaultTarget};
use super::http::{HttpResponse, SimBody};
use super::s3::{S3Control, S3Endpoint};
use super::vault::Vault;
use super::VaultControl;

/// Path prefix of the admin API.
pub(crate) const MOUNT: &str = "/_sim";
/// Largest request body.
const MAX_BODY: usize = 1024 * 1024;

/// The admin API of one simulator.
#[derive(Debug)]
pub(crate) struct Admin {
    vaults: Vec<VaultControl>,
    workspaces: Vec<DeepsetControl>,
    s3: Option<S3Control>,
}

/// A refused admin request.
#[derive(Debug)]
struct AdminError {
    status: StatusCode,
    message: String,
}

impl AdminError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn response(&self) -> HttpResponse {
        reply(self.status, &json!({ "error": self.message }))
    }
}

type AdminResult = Result<(StatusCode, Value), AdminError>;

/// Which vault or workspace a request is about.
#[derive(Debug, Deserialize)]
struct TargetJson {
    api: Option<String>,
    vault: Option<String>,
    workspace: Option<String>,
    bucket: Option<String>,
}

enum Target<'a> {
    Vault(&'a VaultControl),
    Deepset(&'a DeepsetControl),
    /// The S3 side, one bucket or (`None`) every request.
    S3(&'a S3Control, Option<String>),
}

/// The fault part of `POST /_sim/faults` and of the listing.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum KindJson {
    VaultFailure {
        error_type: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    HttpStatus {
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content_type: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        body: Option<String>,
    },
    HtmlSignIn,
    #[serde(alias = "malformed_xml")]
    MalformedJson,
    #[serde(alias = "truncated_xml")]
    TruncatedJson,
    Oversized {
        bytes: usize,
    },
    OversizedChunked {
        bytes: usize,
    },
    Hang,
    Reset,
    Delay {
        ms: u64,
    },
    WrongVersionTrap,
    TooManyRequests {
        retry_after: u64,
    },
    UnknownFields,
    OddRecords {
        records: Vec<Value>,
    },
    Unauthorized,
    Validation,
    BadGateway,
    ReflectRequest {
        status: u16,
    },
    S3Error {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    SlowDown {
        retry_after: u64,
    },
}

impl KindJson {
    fn into_kind(self) -> Result<FaultKind, AdminError> {
        Ok(match self {
            KindJson::VaultFailure {
                error_type,
                message,
            } => {
                if error_type.trim().is_empty() {
                    return Err(AdminError::bad("error_type must not be empty"));
                }
                let message = message.unwrap_or_else(|| format!("Simulated {error_type}."));
                FaultKind::VaultFailure {
                    error_type,
                    message,
                }
            }
            KindJson::HttpStatus {
                status,
                content_type,
                body,
            } => {
                if !(100..=999).contains(&status) {
                    return Err(AdminError::bad(format!(
                        "status {status} is not an HTTP status code (100 to 999)"
                    )));
                }
                match (content_type, body) {
                    (None, None) => FaultKind::gateway_html(status),
                    (content_type, body) => FaultKind::HttpStatus {
                        status,
                        content_type: content_type.unwrap_or_else(|| "text/html".to_owned()),
                        body: body.unwrap_or_default(),
                    },
                }
            }
            KindJson::HtmlSignIn => FaultKind::HtmlSignIn,
            KindJson::MalformedJson => FaultKind::MalformedJson,
            KindJson::TruncatedJson => FaultKind::TruncatedJson,
            KindJson::Oversized { bytes } => FaultKind::Oversized { bytes },
            KindJson::OversizedChunked { bytes } => FaultKind::OversizedChunked { bytes },
            KindJson::Hang => FaultKind::Hang,
            KindJson::Reset => FaultKind::Reset,
            KindJson::Delay { ms } => FaultKind::Delay(Duration::from_millis(ms)),
            KindJson::WrongVersionTrap => FaultKind::WrongVersionTrap,
            KindJson::TooManyRequests { retry_after } => FaultKind::TooManyRequests { retry_after },
            KindJson::UnknownFields => FaultKind::UnknownFields,
            KindJson::OddRecords { records } => FaultKind::OddRecords { records },
            KindJson::Unauthorized => FaultKind::unauthorized(),
            KindJson::Validation => FaultKind::validation(),
            KindJson::BadGateway => FaultKind::bad_gateway(),
            KindJson::ReflectRequest { status } => {
                if !(100..=999).contains(&status) {
                    return Err(AdminError::bad(format!(
                        "status {status} is not an HTTP status code (100 to 999)"
                    )));
                }
                FaultKind::ReflectRequest { status }
            }
            KindJson::S3Error { code, message } => {
                if code.trim().is_empty() {
                    return Err(AdminError::bad("code must not be empty"));
                }
                let message = message.unwrap_or_else(|| format!("Simulated {code}."));
                FaultKind::VaultFailure {
                    error_type: code,
                    message,
                }
            }
            KindJson::SlowDown { retry_after } => FaultKind::TooManyRequests { retry_after },
        })
    }

    fn from_kind(kind: &FaultKind) -> Self {
        match kind.clone() {
            FaultKind::VaultFailure {
                error_type,
                message,
            } => KindJson::VaultFailure {
                error_type,
                message: Some(message),
            },
            FaultKind::HttpStatus {
                status,
                content_type,
                body,
            } => KindJson::HttpStatus {
                status,
                content_type: Some(content_type),
                body: Some(body),
            },
            FaultKind::HtmlSignIn => KindJson::HtmlSignIn,
            FaultKind::MalformedJson => KindJson::MalformedJson,
            FaultKind::TruncatedJson => KindJson::TruncatedJson,
            FaultKind::Oversized { bytes } => KindJson::Oversized { bytes },
            FaultKind::OversizedChunked { bytes } => KindJson::OversizedChunked { bytes },
            FaultKind::Hang => KindJson::Hang,
            FaultKind::Reset => KindJson::Reset,
            FaultKind::Delay(d) => KindJson::Delay {
                ms: u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
            },
            FaultKind::WrongVersionTrap => KindJson::WrongVersionTrap,
            FaultKind::TooManyRequests { retry_after } => KindJson::TooManyRequests { retry_after },
            FaultKind::UnknownFields => KindJson::UnknownFields,
            FaultKind::OddRecords { records } => KindJson::OddRecords { records },
            FaultKind::ReflectRequest { status } => KindJson::ReflectRequest { status },
        }
    }
}

/// The rest of `POST /_sim/faults`.
#[derive(Debug, Deserialize)]
struct RuleJson {
    endpoint: Option<String>,
    times: Option<u32>,
}

/// `POST /_sim/actions`.
#[derive(Debug, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
enum ActionJson {
    InvalidateLoginSessions,
    SetBurstRemaining {
        remaining: u32,
        #[serde(default)]
        response_delay_ms: Option<u64>,
    },
    SetResponseDelay {
        ms: u64,
    },
    UnlockUser {
        username: String,
    },
}

impl Admin {
    pub(crate) fn new(vaults: &[Arc<Vault>], deepset: &Deepset, s3: Option<S3Control>) -> Self {
        Self {
            vaults: vaults
                .iter()
                .map(|v| VaultControl {
                    inner: Arc::clone(v),
                })
                .collect(),
            workspaces: deepset
                .workspaces()
                .iter()
                .filter_map(|w| deepset.control(&w.spec.workspace))
                .collect(),
            s3,
        }
    }

    /// Serves one request whose path, after [`MOUNT`], is `rest`.
    pub(crate) async fn serve(&self, req: Request<Incoming>, rest: &str) -> HttpResponse {
        let method = req.method().clone();
        let query = req.uri().query().unwrap_or("").to_owned();
        let result = match (rest.trim_end_matches('/'), method) {
            ("/faults", Method::GET) => Ok((StatusCode::OK, self.list())),
            ("/faults", Method::POST) => match read_json(req).await {
                Ok(body) => self.arm(&body),
                Err(e) => Err(e),
            },
            ("/faults", Method::DELETE) => self.clear(&query),
            ("/actions", Method::POST) => match read_json(req).await {
                Ok(body) => self.act(&body),
                Err(e) => Err(e),
            },
            ("/faults" | "/actions", _) => Err(AdminError {
                status: StatusCode::METHOD_NOT_ALLOWED,
                message: "method not allowed: /_sim/faults takes GET, POST and DELETE; \
                          /_sim/actions takes POST"
                    .to_owned(),
            }),
            _ => Err(AdminError::not_found(
                "unknown admin path; the admin API serves /_sim/faults and /_sim/actions",
            )),
        };
        match result {
            Ok((status, body)) => reply(status, &body),
            Err(e) => e.response(),
        }
    }

    fn target(&self, t: &TargetJson) -> Result<Target<'_>, AdminError> {
        match t.api.as_deref() {
            Some("vault") => {
                let Some(name) = t.vault.as_deref() else {
                    return Err(AdminError::bad(format!(
                        "name the vault: \"vault\": one of {}",
                        self.vault_names()
                    )));
                };
                self.vaults
                    .iter()
                    .find(|v| v.spec().name == name)
                    .map(Target::Vault)
                    .ok_or_else(|| {
                        AdminError::not_found(format!(
                            "no vault {name:?}; the vaults are {}",
                            self.vault_names()
                        ))
                    })
            }
            Some("deepset") => {
                let Some(name) = t.workspace.as_deref() else {
                    return Err(AdminError::bad(format!(
                        "name the workspace: \"workspace\": one of {}",
                        self.workspace_names()
                    )));
                };
                self.workspaces
                    .iter()
                    .find(|w| w.spec().workspace == name)
                    .map(Target::Deepset)
                    .ok_or_else(|| {
                        AdminError::not_found(format!(
                            "no deepset workspace {name:?}; the workspaces are {}",
                            self.workspace_names()
                        ))
                    })
            }
            Some("s3") => {
                let Some(s3) = &self.s3 else {
                    return Err(AdminError::not_found("this simulator has no S3 side"));
                };
                match t.bucket.as_deref() {
                    None => Ok(Target::S3(s3, None)),
                    Some(b) if s3.knows_bucket(b) => Ok(Target::S3(s3, Some(b.to_owned()))),
                    Some(b) => Err(AdminError::not_found(format!(
                        "no S3 bucket {b:?}; the buckets are {}",
                        quoted(s3.buckets().iter().map(String::as_str))
                    ))),
                }
            }
            Some(other) => Err(AdminError::bad(format!(
                "api {other:?} is not simulated; use \"vault\", \"deepset\" or \"s3\""
            ))),
            None => Err(AdminError::bad(
                "missing \"api\": \"vault\", \"deepset\" or \"s3\"",
            )),
        }
    }

    fn vault_names(&self) -> String {
        quoted(self.vaults.iter().map(|v| v.spec().name.as_str()))
    }

    fn workspace_names(&self) -> String {
        quoted(self.workspaces.iter().map(|w| w.spec().workspace.as_str()))
    }

    fn list(&self) -> Value {
        let vaults: Map<String, Value> = self
            .vaults
            .iter()
            .map(|v| (v.spec().name.clone(), rules_json(&v.faults())))
            .collect();
        let deepset: Map<String, Value> = self
            .workspaces
            .iter()
            .map(|w| (w.spec().workspace.clone(), rules_json(&w.faults())))
            .collect();
        let s3: Map<String, Value> = self
            .s3
            .iter()
            .flat_map(S3Control::faults)
            .map(|(bucket, rules)| (bucket.unwrap_or_else(|| "*".to_owned()), rules_json(&rules)))
            .collect();
        json!({ "vaults": vaults, "deepset": deepset, "s3": s3 })
    }

    fn arm(&self, body: &Value) -> AdminResult {
        let target = TargetJson::deserialize(body).map_err(|e| AdminError::bad(e.to_string()))?;
        let rule = RuleJson::deserialize(body).map_err(|e| AdminError::bad(e.to_string()))?;
        if body.get("kind").is_none() {
            return Err(AdminError::bad(
                "missing \"kind\", e.g. \"http_status\", \"hang\" or \"odd_records\"",
            ));
        }
        let kind = KindJson::deserialize(body)
            .map_err(|e| AdminError::bad(e.to_string()))?
            .into_kind()?;
        if rule.times == Some(0) {
            return Err(AdminError::bad(
                "times must be at least 1; leave it out for a fault that lasts until cleared",
            ));
        }
        let armed = match self.target(&target)? {
            Target::Vault(v) => {
                let endpoint = endpoint::<Endpoint>(rule.endpoint.as_deref())?;
                let armed = FaultRule {
                    endpoint,
                    kind,
                    times: rule.times,
                };
                let mut out = rule_json(&armed);
                v.inject(armed);
                out["api"] = json!("vault");
                out["vault"] = json!(v.spec().name);
                out
            }
            Target::Deepset(w) => {
                if kind == FaultKind::WrongVersionTrap {
                    return Err(AdminError::bad(
                        "wrong_version_trap is a Vault fault; deepset has no API versions",
                    ));
                }
                let endpoint = endpoint::<DeepsetEndpoint>(rule.endpoint.as_deref())?;
                let armed = FaultRule {
                    endpoint,
                    kind,
                    times: rule.times,
                };
                let mut out = rule_json(&armed);
                w.inject(armed);
                out["api"] = json!("deepset");
                out["workspace"] = json!(w.spec().workspace);
                out
            }
            Target::S3(s3, bucket) => {
                if kind == FaultKind::WrongVersionTrap {
                    return Err(AdminError::bad(
                        "wrong_version_trap is a Vault fault; S3 has no API versions",
                    ));
                }
                let endpoint = endpoint::<S3Endpoint>(rule.endpoint.as_deref())?;
                let armed = FaultRule {
                    endpoint,
                    kind,
                    times: rule.times,
                };
                let mut out = rule_json(&armed);
                s3.inject(bucket.as_deref(), armed);
                out["api"] = json!("s3");
                out["bucket"] = json!(bucket);
                out
            }
        };
        Ok((StatusCode::CREATED, armed))
    }

    fn clear(&self, query: &str) -> AdminResult {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query).map_err(|e| AdminError::bad(e.to_string()))?;
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let t = TargetJson {
            api: get("api"),
            vault: get("vault"),
            workspace: get("workspace"),
            bucket: get("bucket"),
        };
        let cleared = if t.api.is_none()
            && t.vault.is_none()
            && t.workspace.is_none()
            && t.bucket.is_none()
        {
            self.vaults
                .iter()
                .map(|v| v.inner.faults().clear())
                .sum::<usize>()
                + self
                    .workspaces
                    .iter()
                    .map(|w| {
                        let n = w.faults().len();
                        w.clear_faults();
                        n
                    })
                    .sum::<usize>()
                + self.s3.as_ref().map_or(0, |s| s.clear_faults(None))
        } else {
            match self.target(&t)? {
                Target::Vault(v) => v.inner.faults().clear(),
                Target::Deepset(w) => {
                    let n = w.faults().len();
                    w.clear_faults();
                    n
                }
                Target::S3(s3, bucket) => s3.clear_faults(bucket.as_deref()),
            }
        };
        Ok((StatusCode::OK, json!({ "cleared": cleared })))
    }

    fn act(&self, body: &Value) -> AdminResult {
        let target = TargetJson::deserialize(body).map_err(|e| AdminError::bad(e.to_string()))?;
        let Some(name) = body
            .get("action")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(AdminError::bad(
                "missing \"action\": invalidate_login_sessions, set_burst_remaining, \
                 set_response_delay or unlock_user",
            ));
        };
        let action = ActionJson::deserialize(body).map_err(|e| AdminError::bad(e.to_string()))?;
        let v = match self.target(&target)? {
            Target::Vault(v) => v,
            Target::Deepset(_) | Target::S3(..) => {
                return Err(AdminError::bad(
                    "actions change vault state; deepset workspaces and S3 have none",
                ))
            }
        };
        match action {
            ActionJson::InvalidateLoginSessions => v.invalidate_login_sessions(),
            ActionJson::SetBurstRemaining {
                remaining,
                response_delay_ms,
            } => {
                if let Some(ms) = response_delay_ms {
                    v.set_response_delay(Duration::from_millis(ms));
                }
                v.set_burst_remaining(remaining);
            }
            ActionJson::SetResponseDelay { ms } => v.set_response_delay(Duration::from_millis(ms)),
            ActionJson::UnlockUser { username } => v.unlock_user(&username),
        }
        Ok((StatusCode::OK, json!({ "done": name })))
    }
}

/// The endpoint called `name` (`None` = every endpoint).
fn endpoint<E: FaultTarget>(name: Option<&str>) -> Result<Option<E>, AdminError> {
    let Some(name) = name else { return Ok(None) };
    E::parse(name).map(Some).ok_or_else(|| {
        AdminError::bad(format!(
            "unknown endpoint {name:?}; use one of {} or leave it out for every endpoint",
            quoted(E::ALL.iter().map(|e| e.name()))
        ))
    })
}

fn rule_json<E: FaultTarget>(rule: &FaultRule<E>) -> Value {
    let mut v = serde_json::to_value(KindJson::from_kind(&rule.kind)).unwrap_or_else(|_| json!({}));
    if let Value::Object(obj) = &mut v {
        obj.insert("endpoint".to_owned(), json!(rule.endpoint.map(E::name)));
        obj.insert("times".to_owned(), json!(rule.times));
    }
    v
}

fn rules_json<E: FaultTarget>(rules: &[FaultRule<E>]) -> Value {
    Value::Array(rules.iter().map(rule_json).collect())
}

fn quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<String> = names.map(|n| format!("{n:?}")).collect();
    if v.is_empty() {
        "(none)".to_owned()
    } else {
        v.join(", ")
    }
}

/// The request body as JSON (at most [`MAX_BODY`] bytes).
async fn read_json(req: Request<Incoming>) -> Result<Value, AdminError> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| AdminError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("request body over {MAX_BODY} bytes, or cut short"),
        })?
        .to_bytes();
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| AdminError::bad(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(AdminError::bad("the body must be a JSON object"));
    }
    Ok(value)
}

fn reply(status: StatusCode, body: &Value) -> HttpResponse {
    let bytes = serde_json::to_vec(body)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(br#"{"error":"cannot serialize the answer"}"#));
    let mut resp = Response::new(SimBody::whole(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_json() {
        let kinds = [
            FaultKind::VaultFailure {
                error_type: "USER_LOCKED_OUT".into(),
                message: "m".into(),
            },
            FaultKind::gateway_html(503),
            FaultKind::HtmlSignIn,
            FaultKind::MalformedJson,
            FaultKind::TruncatedJson,
            FaultKind::Oversized { bytes: 10 },
            FaultKind::OversizedChunked { bytes: 11 },
            FaultKind::Hang,
            FaultKind::Reset,
            FaultKind::Delay(Duration::from_millis(250)),
            FaultKind::WrongVersionTrap,
            FaultKind::TooManyRequests { retry_after: 7 },
            FaultKind::UnknownFields,
            FaultKind::OddRecords {
                records: vec![json!({"id": -1}), json!("x")],
            },
            FaultKind::ReflectRequest { status: 502 },
        ];
        for k in kinds {
            let v = serde_json::to_value(KindJson::from_kind(&k)).unwrap();
            let back = KindJson::deserialize(&v).unwrap().into_kind().unwrap();
            assert_eq!(back, k, "{v}");
        }
    }

    #[test]
    fn shorthands_and_defaults() {
        let k = |v: Value| KindJson::deserialize(&v).unwrap().into_kind();
        assert_eq!(
            k(json!({"kind": "bad_gateway", "api": "deepset"})).unwrap(),
            FaultKind::bad_gateway()
        );
        assert_eq!(
            k(json!({"kind": "http_status", "status": 503})).unwrap(),
            FaultKind::gateway_html(503)
        );
        assert!(k(json!({"kind": "http_status", "status": 42})).is_err());
        assert!(matches!(
            k(json!({"kind": "vault_failure", "error_type": "X"})).unwrap(),
            FaultKind::VaultFailure { message, .. } if message == "Simulated X."
        ));
        assert!(KindJson::deserialize(&json!({"kind": "nope"})).is_err());
        assert!(KindJson::deserialize(&json!({"kind": "delay"})).is_err());
    }

    #[test]
    fn endpoints_are_named() {
        assert_eq!(
            endpoint::<Endpoint>(Some("list_sessions")).unwrap(),
            Some(Endpoint::ListSessions)
        );
        assert_eq!(
            endpoint::<DeepsetEndpoint>(Some("session_status")).unwrap(),
            Some(DeepsetEndpoint::SessionStatus)
        );
        assert_eq!(endpoint::<Endpoint>(None).unwrap(), None);
        let e = endpoint::<Endpoint>(Some("list")).unwrap_err();
        assert!(e.message.contains("\"list_sessions\""), "{}", e.message);
    }
}
