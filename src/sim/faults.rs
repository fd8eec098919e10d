//! Fault injection: rules that make a simulated API misbehave on purpose
//! (gateway errors, broken bodies, hangs, rate limiting...), so clients can
//! be tested against them. [`FaultKind`] is shared by every simulated API;
//! [`FaultRule`] is generic over the API's endpoint enum ([`Endpoint`] for
//! Vault, [`DeepsetEndpoint`](super::DeepsetEndpoint) for deepset).

use std::sync::Mutex;
use std::time::Duration;

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
    /// HTTP 200 JSON-looking body of exactly this many bytes.
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

/// An endpoint enum faults can target.
pub(crate) trait FaultTarget: Copy + PartialEq {
    /// Whether a rule of `kind` passes this endpoint by (it neither fires
    /// nor is consumed).
    fn spared_by(self, _kind: &FaultKind) -> bool {
        false
    }
}

impl FaultTarget for Endpoint {
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

    pub(crate) fn clear(&self) {
        lock(&self.rules).clear();
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
}
