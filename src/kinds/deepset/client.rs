//! The deepset Cloud (deepset AI Platform) upload-session client.
//!
//! A poll lists the workspace's sessions that have not expired yet (all
//! pages) and those that expired within `expired_window` (newest first, only
//! as far back as the window), then asks for ingestion counts only where
//! they can still change: OPEN sessions (files still arriving) and CLOSED
//! sessions whose ingestion is pending. Final counts are cached per session,
//! so old closed sessions cost nothing after their first sight. Those
//! per-session calls run [`SESSION_FETCHES_AT_ONCE`] sessions at a time.
//!
//! Paging is robust to the list changing between pages: with cursors
//! (`after` = last id seen) insertions and removals cannot make a page skip
//! anything; with page numbers the list is sorted oldest first (new
//! sessions land on the last page) and a pass during which `total` moved,
//! or that saw fewer sessions than `total`, is repeated once (best effort:
//! cursors are the robust choice). Duplicates are dropped either way.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use url::Url;

use super::{wire, DeepsetConfig, Pagination};
use crate::model::{parse_timestamp, FileCounts, Session, SessionState, UnixMillis};
use crate::secret::Secret;
use crate::settings::TargetConfig;
use crate::upstream::http::header_u64;
use crate::upstream::redact::{Redactor, MESSAGE_CHARS, SNIPPET_CHARS, TOKEN_CHARS};
use crate::upstream::{CallLog, FetchError, RequestLimiter};

/// Endpoint names, the `endpoint` label of `upload_session_api_requests_total`.
pub mod endpoint {
    /// Get Upload Sessions (one per page).
    pub const LIST_SESSIONS: &str = "list_upload_sessions";
    /// Get Session Status.
    pub const SESSION_STATUS: &str = "get_session_status";
    /// List a session's files (`limit=1`, for the count).
    pub const LIST_FILES: &str = "list_session_files";
}

/// The API's maximum page size.
const PAGE_SIZE: u32 = 100;
/// Pages per listing before giving up (100,000 sessions).
const MAX_PAGES: usize = 1000;
/// Retries of a 5xx answer within one poll.
const RETRIES: u32 = 2;
/// Sessions of one workspace whose counts (status, then file count) are
/// fetched at the same time. A workspace's first poll makes two calls per
/// closed session in the window, often hundreds: one after the other that
/// is 17 s for 350 calls at 50 ms; four at a time, about 4 s. More would
/// shorten it further, but deepset Cloud is a shared service that answers
/// bursts with 429 and 502, and one workspace should not take more than a
/// small share of `max_concurrent_requests` (an eighth of the default 32),
/// which is what bounds the whole fleet.
pub const SESSION_FETCHES_AT_ONCE: usize = 4;

/// Counts of a session that can no longer change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Final(FileCounts);

/// A deepset client for one target. Owned by that target's poll task.
pub struct DeepsetClient {
    api: Api,
    cache: HashMap<String, Final>,
}

/// The calls of a client. Only `&self`, so that several calls of one poll
/// can be in flight while the client's cache is updated as they end.
struct Api {
    http: reqwest::Client,
    /// `{url}/api/v1/workspaces/{workspace}` as path segments base.
    base: Url,
    cfg: DeepsetConfig,
    timeout: Duration,
    max_body: u64,
    /// Calls in flight record themselves here; never locked across an await.
    calls: Mutex<CallLog>,
    /// Shared with every client of the exporter.
    limiter: RequestLimiter,
    /// Masks the API key in upstream text put into errors.
    red: Redactor,
}

/// The counts of one session, and whether they are final.
#[derive(Debug, Clone, Copy)]
struct Counts {
    files: FileCounts,
    done: bool,
}

/// A listing query.
#[derive(Debug, Clone, Copy)]
struct Query {
    is_expired: bool,
    field: &'static str,
    order: &'static str,
    /// Stop once an entry's `expires_at` is older than this (DESC listings).
    stop_before: Option<UnixMillis>,
}

impl DeepsetClient {
    /// Creates a client for a `kind = "deepset"` target whose requests take
    /// their permits from `limiter`.
    pub fn new(
        target: &TargetConfig,
        cfg: &DeepsetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Self, FetchError> {
        let mut base = target.url.clone();
        if let Ok(mut p) = base.path_segments_mut() {
            p.pop_if_empty()
                .extend(["api", "v1", "workspaces", cfg.workspace.as_str()]);
        }
        Ok(DeepsetClient {
            api: Api {
                http: limiter.client_for(target)?,
                base,
                cfg: cfg.clone(),
                timeout: target.timeout,
                max_body: target.max_response_bytes,
                calls: Mutex::new(CallLog::default()),
                limiter: limiter.clone(),
                red: Redactor::new([&cfg.api_key]),
            },
            cache: HashMap::new(),
        })
    }

    /// Calls made since the last call of this method.
    pub fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.api
            .calls
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Sessions whose counts are cached as final.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// One poll: the sessions with their file counts, as the model.
    pub async fn fetch(&mut self, now: UnixMillis) -> Result<Vec<Session>, FetchError> {
        let live = self
            .api
            .list_all(Query {
                is_expired: false,
                field: "created_at",
                order: "ASC",
                stop_before: None,
            })
            .await?;
        let window = i64::try_from(self.api.cfg.expired_window.as_millis()).unwrap_or(i64::MAX);
        let expired = self
            .api
            .list_all(Query {
                is_expired: true,
                field: "expires_at",
                order: "DESC",
                stop_before: Some(now.saturating_sub(window)),
            })
            .await?;
        let mut seen = HashSet::new();
        let mut sessions = Vec::with_capacity(live.len() + expired.len());
        let mut skipped = 0usize;
        for w in live.into_iter().chain(expired) {
            match to_model(w, now) {
                Some(s) if seen.insert(s.id.clone()) => sessions.push(s),
                Some(_) => {}
                None => skipped += 1,
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "some listed deepset sessions had no session_id and were skipped"
            );
        }
        self.fill_counts(&mut sessions).await?;
        // Forget what is no longer listed, so the cache follows the window.
        self.cache.retain(|id, _| seen.contains(id));
        Ok(sessions)
    }

    /// Sets the file counts: cached ones, and fetched ones where they can
    /// change, [`SESSION_FETCHES_AT_ONCE`] sessions at a time. Final counts
    /// go into the cache as soon as they arrive, so a poll cut short by its
    /// budget still saves the next one those calls. The first call to fail
    /// decides the poll's outcome, as when the calls were made one after
    /// the other: the calls still in flight are abandoned (they were
    /// counted when sent) and no more are started.
    async fn fill_counts(&mut self, sessions: &mut [Session]) -> Result<(), FetchError> {
        let mut todo = Vec::new();
        for (i, s) in sessions.iter_mut().enumerate() {
            if let Some(Final(c)) = self.cache.get(&s.id) {
                s.files = Some(*c);
            } else if matches!(s.state, SessionState::Open | SessionState::Closed) {
                todo.push((i, s.id.clone(), s.state));
            }
            // Expired sessions are never ingested: no calls.
        }
        let api = &self.api;
        let mut todo = todo.into_iter();
        let mut running = FuturesUnordered::new();
        loop {
            while running.len() < SESSION_FETCHES_AT_ONCE {
                let Some((i, id, state)) = todo.next() else {
                    break;
                };
                running.push(async move {
                    let counts = api.counts(&id, state).await;
                    (i, id, counts)
                });
            }
            let Some((i, id, counts)) = running.next().await else {
                return Ok(());
            };
            if let Some(c) = counts? {
                if c.done {
                    self.cache.insert(id, Final(c.files));
                }
                if let Some(s) = sessions.get_mut(i) {
                    s.files = Some(c.files);
                }
            }
        }
    }
}

impl Api {
    /// Fetches the counts of a session that is open or closed; `None` if
    /// it vanished meanwhile.
    async fn counts(&self, id: &str, state: SessionState) -> Result<Option<Counts>, FetchError> {
        match state {
            // Files are still arriving; nothing is ingested before closing.
            SessionState::Open => Ok(self.file_total(id).await?.map(|total| Counts {
                files: FileCounts {
                    total,
                    finished: 0,
                    failed: 0,
                },
                done: false,
            })),
            SessionState::Closed => {
                let Some(status) = self.status(id).await? else {
                    return Ok(None);
                };
                let Some(total) = self.file_total(id).await? else {
                    return Ok(None);
                };
                let ing = status.ingestion_status.unwrap_or_default();
                let files = FileCounts {
                    total,
                    finished: ing.finished_files.unwrap_or(0),
                    failed: ing.failed_files.unwrap_or(0),
                };
                Ok(Some(Counts {
                    files,
                    done: files.pending() == 0,
                }))
            }
            _ => Ok(None),
        }
    }

    async fn list_all(&self, q: Query) -> Result<Vec<wire::Session>, FetchError> {
        let passes = match self.cfg.pagination {
            Pagination::Cursor => 1,
            Pagination::Page => 2,
        };
        let mut out = Vec::new();
        let mut ids = HashSet::new();
        for _ in 0..passes {
            let (first, last) = self.list_pass(q, &mut out, &mut ids).await?;
            // Paging by number misses entries when entries before them
            // vanish between pages. A total that moved during the pass, or
            // fewer entries than the total, says the list changed: go once
            // more (duplicates are dropped).
            let changed = first != last || last.is_some_and(|t| (ids.len() as u64) < t);
            if q.stop_before.is_some() || !changed {
                break;
            }
        }
        Ok(out)
    }

    /// One pass over the pages; returns the `total` of the first and of the
    /// last page.
    async fn list_pass(
        &self,
        q: Query,
        out: &mut Vec<wire::Session>,
        ids: &mut HashSet<String>,
    ) -> Result<(Option<u64>, Option<u64>), FetchError> {
        let mut after: Option<String> = None;
        let mut first_total = None;
        let mut total = None;
        for page in 1..=MAX_PAGES {
            let mut url = self.url(&["upload_sessions"]);
            {
                let mut qp = url.query_pairs_mut();
                qp.append_pair("is_expired", if q.is_expired { "true" } else { "false" })
                    .append_pair("limit", &PAGE_SIZE.to_string())
                    .append_pair("field", q.field)
                    .append_pair("order", q.order);
                match (self.cfg.pagination, &after) {
                    (Pagination::Cursor, Some(a)) => {
                        qp.append_pair("after", a);
                    }
                    (Pagination::Cursor, None) => {}
                    (Pagination::Page, _) => {
                        qp.append_pair("page_number", &page.to_string());
                    }
                }
            }
            let body = self.get(endpoint::LIST_SESSIONS, url).await?;
            let Some(body) = body else {
                return Err(FetchError::HttpStatus {
                    endpoint: endpoint::LIST_SESSIONS,
                    status: 404,
                    snippet: format!("workspace {:?} not found", self.cfg.workspace),
                });
            };
            let p: wire::SessionPage = decode(endpoint::LIST_SESSIONS, &body, &self.red)?;
            if page == 1 {
                first_total = p.total;
            }
            total = p.total.or(total);
            let mut new = 0;
            let mut reached_stop = false;
            let last_id = p.data.items.last().and_then(|s| s.session_id.clone());
            for s in p.data.items {
                if let (Some(stop), Some(e)) = (
                    q.stop_before,
                    s.expires_at.as_deref().and_then(parse_timestamp),
                ) {
                    if e < stop {
                        reached_stop = true;
                        continue;
                    }
                }
                match &s.session_id {
                    Some(id) if ids.insert(id.clone()) => {
                        new += 1;
                        out.push(s);
                    }
                    Some(_) => {}
                    // Kept so that the caller counts and reports it.
                    None => out.push(s),
                }
            }
            if !p.has_more || reached_stop {
                return Ok((first_total, total));
            }
            match self.cfg.pagination {
                Pagination::Cursor => {
                    if last_id.is_none() || last_id == after || new == 0 {
                        return Err(FetchError::Decode {
                            endpoint: endpoint::LIST_SESSIONS,
                            detail: "has_more is true but the page brought nothing new; stopping"
                                .into(),
                        });
                    }
                    after = last_id;
                }
                Pagination::Page => {}
            }
        }
        Err(FetchError::Decode {
            endpoint: endpoint::LIST_SESSIONS,
            detail: format!("more than {MAX_PAGES} pages of sessions; stopping"),
        })
    }

    /// Get Session Status; `None` if the session is gone (404).
    async fn status(&self, id: &str) -> Result<Option<wire::SessionStatus>, FetchError> {
        let url = self.url(&["upload_sessions", id]);
        match self.get(endpoint::SESSION_STATUS, url).await? {
            Some(body) => decode(endpoint::SESSION_STATUS, &body, &self.red).map(Some),
            None => Ok(None),
        }
    }

    /// The number of files in a session (`limit=1` → `total`).
    async fn file_total(&self, id: &str) -> Result<Option<u64>, FetchError> {
        let mut url = self.url(&["upload_sessions", id, "files"]);
        url.query_pairs_mut().append_pair("limit", "1");
        let Some(body) = self.get(endpoint::LIST_FILES, url).await? else {
            return Ok(None);
        };
        let page: wire::FilePage = decode(endpoint::LIST_FILES, &body, &self.red)?;
        Ok(Some(page.total.unwrap_or(0)))
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.extend(segments);
        }
        url
    }

    /// A GET with retries on 5xx inside the poll; `Ok(None)` on 404.
    async fn get(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        let mut attempt = 0;
        loop {
            let req = self
                .http
                .get(url.clone())
                .header("Accept", "application/json")
                .header("Authorization", bearer(&self.cfg.api_key));
            let resp = self
                .limiter
                .send(req, endpoint, self.timeout, self.max_body, || {
                    self.calls
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record(endpoint)
                })
                .await?;
            let status = resp.status.as_u16();
            match status {
                200 => return Ok(Some(resp.body)),
                404 => {
                    tracing::debug!(
                        endpoint,
                        detail = %self.red.snippet(&resp.body, SNIPPET_CHARS),
                        "not found"
                    );
                    return Ok(None);
                }
                401 | 403 => {
                    return Err(FetchError::Auth {
                        endpoint,
                        detail: format!(
                            "HTTP {status} ({}): the API key was refused for workspace {:?}; check \
                             api_key_env/api_key_file and that the key may read that workspace",
                            detail_text(&resp.body, &self.red),
                            self.cfg.workspace
                        ),
                    })
                }
                422 => {
                    let detail = match serde_json::from_slice::<wire::ValidationError>(&resp.body) {
                        Ok(v) => self.red.text(&v.summary(), MESSAGE_CHARS),
                        Err(_) => self.red.snippet(&resp.body, SNIPPET_CHARS),
                    };
                    tracing::warn!(endpoint, detail = %detail, "deepset rejected the request (422)");
                    return Err(FetchError::HttpStatus {
                        endpoint,
                        status,
                        snippet: detail,
                    });
                }
                429 => {
                    return Err(FetchError::RateLimited {
                        endpoint,
                        retry_after: header_u64(&resp.headers, "Retry-After")
                            .map(Duration::from_secs),
                    })
                }
                500..=599 if attempt < RETRIES => {
                    attempt += 1;
                    // deepset answers 502 under load: a short pause usually helps.
                    tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
                }
                _ => {
                    return Err(FetchError::HttpStatus {
                        endpoint,
                        status,
                        snippet: self.red.snippet(&resp.body, SNIPPET_CHARS),
                    })
                }
            }
        }
    }
}

fn bearer(key: &Secret) -> String {
    format!("Bearer {}", key.expose())
}

/// `detail` of a FastAPI error body, or the start of the body (masked
/// and bounded: a gateway may echo the `Authorization` header).
fn detail_text(body: &[u8], red: &Redactor) -> String {
    #[derive(serde::Deserialize)]
    struct D {
        detail: serde_json::Value,
    }
    match serde_json::from_slice::<D>(body) {
        Ok(D {
            detail: serde_json::Value::String(s),
        }) => red.text(&s, MESSAGE_CHARS),
        _ => red.snippet(body, SNIPPET_CHARS),
    }
}

fn decode<T: serde::de::DeserializeOwned>(
    endpoint: &'static str,
    body: &[u8],
    red: &Redactor,
) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::Decode {
        endpoint,
        detail: if body.first().is_some_and(|b| *b == b'<') {
            format!(
                "expected JSON, got HTML or XML: {}",
                red.snippet(body, SNIPPET_CHARS)
            )
        } else {
            // serde quotes the offending value, which came from upstream.
            red.text(&e.to_string(), MESSAGE_CHARS)
        },
    })
}

/// Converts a listed session to the model; `None` without a session id.
pub fn to_model(s: wire::Session, now: UnixMillis) -> Option<Session> {
    let id = s.session_id.filter(|i| !i.is_empty())?;
    let expires = s.expires_at.as_deref().and_then(parse_timestamp);
    let past = expires.is_some_and(|e| e <= now);
    let state = match s.status.as_deref() {
        Some("CLOSED") => SessionState::Closed,
        Some("EXPIRED") => SessionState::Expired,
        // An OPEN session past its expiry is expired (older APIs had no
        // EXPIRED status). Unknown statuses count by their expiry.
        _ if past => SessionState::Expired,
        Some("OPEN") | None => SessionState::Open,
        Some(other) => {
            tracing::debug!(
                status = %crate::upstream::redact::Redactor::default().text(other, TOKEN_CHARS),
                "unknown deepset session status; counted as open"
            );
            SessionState::Open
        }
    };
    let user = s.created_by.unwrap_or_default();
    let name = match (user.given_name.as_deref(), user.family_name.as_deref()) {
        (Some(g), Some(f)) => format!("{} {}", g.trim(), f.trim()).trim().to_string(),
        (Some(n), None) | (None, Some(n)) => n.trim().to_string(),
        (None, None) => String::new(),
    };
    Some(Session {
        id,
        owner_id: user
            .user_id
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "unknown".to_string()),
        owner_name: (!name.is_empty()).then_some(name),
        path: None,
        state,
        size: None,
        uploaded: 0,
        parts: 0,
        created: s.created_at.as_deref().and_then(parse_timestamp),
        expires,
        last_upload: None,
        files: None,
    })
}
