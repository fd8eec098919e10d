//! Upstream APIs: the HTTP plumbing every client shares, the bound on
//! requests in flight, and the typed error whose [`ErrorReason`] becomes the
//! `reason` label of `upload_session_poll_errors_total`.

pub mod http;
pub mod lenient;
pub mod redact;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

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

/// What an upstream last said about the caller's request budget (Vault's
/// `X-VaultAPI-*` headers), exported as the `upload_session_api_*` gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BurstInfo {
    /// Calls allowed per window (Vault: `X-VaultAPI-BurstLimit`, 5 minutes).
    pub limit: Option<u64>,
    /// Calls left in the window (`X-VaultAPI-BurstLimitRemaining`).
    pub remaining: Option<u64>,
    /// How long the upstream delays responses, in ms, when it is slowing
    /// the caller down (`X-VaultAPI-ResponseDelay`).
    pub response_delay_ms: Option<u64>,
}

/// Why a call to an upstream failed. Messages name the endpoint and never
/// contain a secret: request URLs carry none, and every text taken from an
/// upstream answer went through the target's [`redact::Redactor`] (secrets
/// masked, length bounded) before it was put here.
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

/// Default of `[exporter] max_concurrent_requests`: room for 32 Vault
/// targets polling at the same moment (a Vault poll makes one call at a
/// time; the former default allowed 16 polls, so 16 calls), or 8 deepset
/// workspaces fetching counts at full width, which at 50 ms per call makes
/// 640 calls per second, the first cycle of 200 Vaults in well under a
/// second. It mainly bounds the exporter's own sockets and response
/// buffers: each target's own calls stay few at a time anyway.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 32;

/// Bounds the upstream requests in flight at once, across all targets
/// (`[exporter] max_concurrent_requests`), and hands out the HTTP clients
/// they go through.
///
/// The clients of one exporter share it (it is handed to them when they are
/// built; clones share the permits) and send every request through
/// [`send`](Self::send). A request holds a permit from just before it is
/// sent until its body is read, which the target's `timeout` bounds;
/// waiting between requests (retry pauses, the next page) holds none. So a
/// poll that makes hundreds of calls interleaves with the others instead of
/// blocking them, and a hanging upstream holds at most one permit per
/// request it has in flight. Waiters are served first come, first served.
#[derive(Debug, Clone)]
pub struct RequestLimiter {
    inner: Arc<LimiterInner>,
}

#[derive(Debug)]
struct LimiterInner {
    permits: Semaphore,
    /// The HTTP clients the requests go through.
    clients: http::ClientCache,
    /// The configured size (permits in use included).
    size: Mutex<usize>,
}

impl RequestLimiter {
    /// A limiter allowing `size` requests in flight at once.
    pub fn new(size: usize) -> Self {
        let size = size.min(Semaphore::MAX_PERMITS);
        RequestLimiter {
            inner: Arc::new(LimiterInner {
                permits: Semaphore::new(size),
                clients: http::ClientCache::default(),
                size: Mutex::new(size),
            }),
        }
    }

    /// The HTTP client for `target`'s requests: every request goes out
    /// through the limiter, and targets with the same TLS settings share one
    /// client (see [`http::ClientCache`]).
    pub fn client_for(
        &self,
        target: &crate::settings::TargetConfig,
    ) -> Result<reqwest::Client, FetchError> {
        self.inner.clients.client_for(target)
    }

    /// The configured number of requests in flight at once.
    pub fn size(&self) -> usize {
        *self.inner.size.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Permits free at this moment.
    pub fn available(&self) -> usize {
        self.inner.permits.available_permits()
    }

    /// Changes the size (on reload). Growing takes effect at once;
    /// shrinking takes free permits at once and the rest as the requests
    /// holding them end. Must be called within a Tokio runtime.
    pub fn resize(&self, want: usize) {
        let want = want.min(Semaphore::MAX_PERMITS);
        let mut size = self.inner.size.lock().unwrap_or_else(|e| e.into_inner());
        if want > *size {
            self.inner.permits.add_permits(want - *size);
        } else if want < *size {
            let excess = *size - want;
            let gone = self.inner.permits.forget_permits(excess);
            if gone < excess {
                let inner = Arc::clone(&self.inner);
                let rest = u32::try_from(excess - gone).unwrap_or(u32::MAX);
                tokio::spawn(async move {
                    if let Ok(p) = inner.permits.acquire_many(rest).await {
                        p.forget();
                    }
                });
            }
        }
        *size = want;
    }

    /// Sends `req` as [`http::send`] does, once a permit is free, and holds
    /// the permit until the body is read. `sent` runs when the permit is
    /// granted, just before the request goes out: callers count the call
    /// there, so that a call abandoned while it waited (a poll cut short,
    /// a shutdown) is not counted as made.
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
        endpoint: &'static str,
        timeout: Duration,
        limit: u64,
        sent: impl FnOnce(),
    ) -> Result<http::Response, FetchError> {
        let _permit = self.acquire(endpoint).await?;
        sent();
        http::send(req, endpoint, timeout, limit).await
    }

    /// Waits for a permit to send one request to `endpoint`.
    pub(crate) async fn acquire(
        &self,
        endpoint: &'static str,
    ) -> Result<SemaphorePermit<'_>, FetchError> {
        // The semaphore is never closed; the error is for completeness.
        self.inner
            .permits
            .acquire()
            .await
            .map_err(|_| FetchError::Connect {
                endpoint,
                detail: "the request limiter was closed".into(),
            })
    }
}

impl Default for RequestLimiter {
    /// The default size of `max_concurrent_requests`.
    fn default() -> Self {
        RequestLimiter::new(DEFAULT_MAX_CONCURRENT_REQUESTS)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limiter_grows_and_shrinks_with_permits_in_use() {
        let l = RequestLimiter::new(3);
        let a = l.acquire("x").await.unwrap();
        let b = l.acquire("x").await.unwrap();
        assert_eq!(l.available(), 1);
        l.resize(5);
        assert_eq!((l.size(), l.available()), (5, 3));
        // Two of the three excess permits are in use: taken back as they end.
        l.resize(1);
        assert_eq!((l.size(), l.available()), (1, 0));
        drop(a);
        drop(b);
        for _ in 0..100 {
            if l.available() == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(l.available(), 1);
        let _c = l.acquire("x").await.unwrap();
        assert_eq!(l.available(), 0);
    }
}
