//! Fault injection: rules that make a vault misbehave on purpose (gateway
//! errors, broken bodies, hangs...), so clients can be tested against them.

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
}

/// One fault to inject into a vault's responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// Which endpoint it hits; `None` hits every endpoint.
    pub endpoint: Option<Endpoint>,
    /// What goes wrong.
    pub kind: FaultKind,
    /// How many requests it hits before it disarms; `None` = until
    /// [`VaultControl::clear_faults`](super::VaultControl::clear_faults).
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule hitting `endpoint` (or every endpoint) until cleared.
    pub fn always(endpoint: Option<Endpoint>, kind: FaultKind) -> Self {
        Self {
            endpoint,
            kind,
            times: None,
        }
    }

    /// A rule hitting the next `times` matching requests.
    pub fn times(endpoint: Option<Endpoint>, kind: FaultKind, times: u32) -> Self {
        Self {
            endpoint,
            kind,
            times: Some(times),
        }
    }
}

/// The ways a simulated vault can misbehave.
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
}

/// A vault's armed fault rules.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    rules: Mutex<Vec<FaultRule>>,
}

impl FaultSet {
    pub(crate) fn push(&self, rule: FaultRule) {
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
    pub(crate) fn take(&self, endpoint: Endpoint) -> Option<FaultKind> {
        let mut rules = lock(&self.rules);
        let idx = rules.iter().position(|r| {
            (r.endpoint.is_none() || r.endpoint == Some(endpoint))
                // The version trap lets logins through: that is the trap.
                && !(r.kind == FaultKind::WrongVersionTrap && endpoint == Endpoint::Auth)
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
