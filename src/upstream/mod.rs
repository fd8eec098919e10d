//! Upstream APIs: the HTTP plumbing every client shares, and the typed error
//! whose [`ErrorReason`] becomes the `reason` label of
//! `upload_session_poll_errors_total`.

pub mod deepset;
pub mod http;
pub mod vault;

use std::fmt;
use std::time::Duration;

/// The `reason` label of `upload_session_poll_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorReason {
    /// Login refused, session rejected, missing permission, wrong Vault.
    Auth,
    /// A request took longer than the target's `timeout`.
    Timeout,
    /// No TCP/TLS connection could be made, or it broke.
    Connect,
    /// The upstream answered with an unexpected HTTP status.
    HttpStatus,
    /// The upstream answered with an API-level failure (Vault `FAILURE`).
    ApiError,
    /// The body was not the JSON expected, or too large.
    Decode,
    /// The upstream said to slow down.
    RateLimited,
}

impl ErrorReason {
    /// Every reason, in label order (counters are initialised to zero for each).
    pub const ALL: [ErrorReason; 7] = [
        ErrorReason::Auth,
        ErrorReason::Timeout,
        ErrorReason::Connect,
        ErrorReason::HttpStatus,
        ErrorReason::ApiError,
        ErrorReason::Decode,
        ErrorReason::RateLimited,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorReason::Auth => "auth",
            ErrorReason::Timeout => "timeout",
            ErrorReason::Connect => "connect",
            ErrorReason::HttpStatus => "http_status",
            ErrorReason::ApiError => "api_error",
            ErrorReason::Decode => "decode",
            ErrorReason::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for ErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call to an upstream failed. Messages name the endpoint and never
/// contain a secret (request URLs carry none; bodies are not echoed whole).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The request timed out.
    #[error("{endpoint}: no answer within {timeout:?}")]
    Timeout {
        /// Endpoint name.
        endpoint: &'static str,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// Connection could not be made or broke.
    #[error("{endpoint}: connection failed: {detail}")]
    Connect {
        /// Endpoint name.
        endpoint: &'static str,
        /// What the HTTP stack said.
        detail: String,
    },
    /// Unexpected HTTP status.
    #[error("{endpoint}: HTTP {status}{}", snippet_suffix(.snippet))]
    HttpStatus {
        /// Endpoint name.
        endpoint: &'static str,
        /// Status code received.
        status: u16,
        /// The start of the body, cleaned for a log line.
        snippet: String,
    },
    /// The body was larger than the target's `max_response_size`.
    #[error("{endpoint}: response larger than the {limit}-byte limit (max_response_size)")]
    TooLarge {
        /// Endpoint name.
        endpoint: &'static str,
        /// The configured cap.
        limit: u64,
    },
    /// The body could not be decoded.
    #[error("{endpoint}: cannot decode the response: {detail}")]
    Decode {
        /// Endpoint name.
        endpoint: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The API reported a failure (Vault `responseStatus` FAILURE/EXCEPTION).
    #[error("{endpoint}: {error_type}: {message}")]
    Api {
        /// Endpoint name.
        endpoint: &'static str,
        /// The error `type` (the part to decide on).
        error_type: String,
        /// The error message as given by the API (for humans).
        message: String,
    },
    /// Authentication or authorisation failed.
    #[error("{endpoint}: {detail}")]
    Auth {
        /// Endpoint name.
        endpoint: &'static str,
        /// What failed and what to do.
        detail: String,
    },
    /// The API asked to slow down.
    #[error("{endpoint}: rate limited{}", retry_suffix(.retry_after))]
    RateLimited {
        /// Endpoint name.
        endpoint: &'static str,
        /// How long the API asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
}

fn snippet_suffix(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(": {s}")
    }
}

fn retry_suffix(d: &Option<Duration>) -> String {
    match d {
        Some(d) => format!(" (retry after {}s)", d.as_secs()),
        None => String::new(),
    }
}

impl FetchError {
    /// The `reason` label this error counts under.
    pub fn reason(&self) -> ErrorReason {
        match self {
            FetchError::Timeout { .. } => ErrorReason::Timeout,
            FetchError::Connect { .. } => ErrorReason::Connect,
            FetchError::HttpStatus { .. } => ErrorReason::HttpStatus,
            FetchError::TooLarge { .. } | FetchError::Decode { .. } => ErrorReason::Decode,
            FetchError::Api { .. } => ErrorReason::ApiError,
            FetchError::Auth { .. } => ErrorReason::Auth,
            FetchError::RateLimited { .. } => ErrorReason::RateLimited,
        }
    }

    /// A delay the upstream asked for, which the poller must honour.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Calls made per endpoint since the last [`CallLog::take`]; the poller adds
/// them to `upload_session_api_requests_total`.
#[derive(Debug, Default, Clone)]
pub struct CallLog {
    counts: Vec<(&'static str, u64)>,
}

impl CallLog {
    /// Counts one call to `endpoint`.
    pub fn record(&mut self, endpoint: &'static str) {
        match self.counts.iter_mut().find(|(e, _)| *e == endpoint) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((endpoint, 1)),
        }
    }

    /// Returns the counts and starts over.
    pub fn take(&mut self) -> Vec<(&'static str, u64)> {
        std::mem::take(&mut self.counts)
    }
}
