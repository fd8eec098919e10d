//! The Veeva Vault / SiteVault File Staging client.
//!
//! Vault answers processed requests with HTTP 200 and reports the outcome in
//! `responseStatus`; the error `type` decides what happens next. Sessions end
//! after inactivity, so an `INVALID_SESSION_ID` triggers one re-login and a
//! retry. Because some Vaults answer an API version they do not serve with the
//! very same error, an `INVALID_SESSION_ID` right after a fresh login is not
//! retried again: it is reported as a version/permission problem, and later
//! polls check the session with `GET /api/` before logging in again. Logins
//! are rate-limited and failed ones can lock the account, so this client
//! never logs in more than twice per poll; the poller's backoff spaces polls.

use std::time::Duration;

use url::Url;

use super::{wire, VaultConfig};
use crate::model::{parse_timestamp, Session, SessionState, UnixMillis};
use crate::secret::Secret;
use crate::settings::TargetConfig;
use crate::upstream::http::{self, header_u64};
use crate::upstream::redact::{Redactor, MESSAGE_CHARS, SNIPPET_CHARS, TOKEN_CHARS};
use crate::upstream::{BurstInfo, CallLog, FetchError, RequestLimiter};

/// A SUCCESS answer: the body, where its `data` is, and the next page.
struct Answer {
    body: bytes::Bytes,
    data: Option<std::ops::Range<usize>>,
    next_page: Option<String>,
}

/// Endpoint names, the `endpoint` label of `upload_session_api_requests_total`.
pub mod endpoint {
    /// `POST /api/{version}/auth`.
    pub const AUTH: &str = "auth";
    /// `GET /api/`.
    pub const API_VERSIONS: &str = "api_versions";
    /// `DELETE /api/{version}/session`.
    pub const LOGOUT: &str = "logout";
    /// List Upload Sessions.
    pub const LIST_SESSIONS: &str = "list_upload_sessions";
    /// Get Upload Session Details.
    pub const SESSION_DETAILS: &str = "get_upload_session";
    /// List File Parts (one per page).
    pub const LIST_PARTS: &str = "list_file_parts";
    /// Retrieve User (owner names).
    pub const USER: &str = "retrieve_user";
}

const INVALID_SESSION_ID: &str = "INVALID_SESSION_ID";
/// Error types that mean "these credentials cannot be used": no retry helps.
const AUTH_ERROR_TYPES: &[&str] = &[
    "USERNAME_OR_PASSWORD_INCORRECT",
    "USER_LOCKED_OUT",
    "INACTIVE_USER",
    "PASSWORD_CHANGE_REQUIRED",
    "NO_PASSWORD_PROVIDED",
    "INSUFFICIENT_ACCESS",
];
/// Most parts a session can have (Vault's limit) over the smallest page.
const MAX_PART_PAGES: usize = 2000;

/// A Vault File Staging client for one target. Owned by that target's poll
/// task; not shared.
pub struct VaultClient {
    http: reqwest::Client,
    /// Base URL without a trailing slash in its path.
    base: Url,
    cfg: VaultConfig,
    timeout: Duration,
    max_body: u64,
    session: Option<Secret>,
    /// The Vault id logins must land in (configured, or learnt at first login).
    expected_vault_id: Option<u64>,
    /// Set after a fresh login was answered with INVALID_SESSION_ID.
    version_suspect: bool,
    burst: BurstInfo,
    calls: CallLog,
    logins: u64,
    /// Shared with every client of the exporter.
    limiter: RequestLimiter,
    /// List Upload Sessions, built once: it is called on every poll.
    list_url: Url,
    /// `X-VaultAPI-ClientID`, validated once.
    client_id: Option<reqwest::header::HeaderValue>,
    /// Masks the password and every session id in upstream text put into
    /// errors.
    red: Redactor,
}

/// The result of one List Upload Sessions call.
#[derive(Debug)]
pub struct SessionList {
    /// Sessions that decoded.
    pub sessions: Vec<wire::UploadSession>,
    /// Entries that could not be decoded and were skipped.
    pub skipped: usize,
}

impl VaultClient {
    /// Creates a client for a `kind = "vault"` target whose requests take
    /// their permits from `limiter`.
    pub fn new(
        target: &TargetConfig,
        cfg: &VaultConfig,
        limiter: &RequestLimiter,
    ) -> Result<Self, FetchError> {
        let mut base = target.url.clone();
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        let client_id = reqwest::header::HeaderValue::from_str(&cfg.client_id).ok();
        let mut client = VaultClient {
            http: limiter.client_for(target)?,
            base,
            cfg: cfg.clone(),
            timeout: target.timeout,
            max_body: target.max_response_bytes,
            session: None,
            expected_vault_id: cfg.vault_id,
            version_suspect: false,
            burst: BurstInfo::default(),
            calls: CallLog::default(),
            logins: 0,
            limiter: limiter.clone(),
            list_url: target.url.clone(),
            client_id,
            red: Redactor::new([&cfg.password]),
        };
        client.list_url = client.file_staging_url(&[]);
        Ok(client)
    }

    /// The last limit headers seen.
    pub fn burst(&self) -> BurstInfo {
        self.burst
    }

    /// Calls made since the last call of this method.
    pub fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.calls.take()
    }

    /// Logins performed since the client was created.
    pub fn logins(&self) -> u64 {
        self.logins
    }

    /// List Upload Sessions: every active session the user may see.
    pub async fn list_sessions(&mut self) -> Result<SessionList, FetchError> {
        let url = self.list_url.clone();
        let (list, _): (wire::Lenient<wire::UploadSession>, _) = self
            .call(
                endpoint::LIST_SESSIONS,
                reqwest::Method::GET,
                url,
                wire::Lenient::from_slice,
            )
            .await?;
        Ok(SessionList {
            sessions: list.items,
            skipped: list.skipped,
        })
    }

    /// Get Upload Session Details.
    pub async fn session_details(&mut self, id: &str) -> Result<wire::UploadSession, FetchError> {
        let url = self.file_staging_url(&[id]);
        let (s, _) = self
            .call(endpoint::SESSION_DETAILS, reqwest::Method::GET, url, |d| {
                serde_json::from_slice(d)
            })
            .await?;
        Ok(s)
    }

    /// List File Parts, following `next_page` to the end. `page_size` is
    /// Vault's `limit` (1–1000).
    pub async fn list_parts(
        &mut self,
        id: &str,
        page_size: u32,
    ) -> Result<Vec<wire::FilePart>, FetchError> {
        let mut url = self.file_staging_url(&[id, "parts"]);
        url.query_pairs_mut()
            .append_pair("limit", &page_size.clamp(1, 1000).to_string());
        let mut parts = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PART_PAGES {
            seen.insert(url.to_string());
            let (page, next): (wire::Lenient<wire::FilePart>, _) = self
                .call(
                    endpoint::LIST_PARTS,
                    reqwest::Method::GET,
                    url,
                    wire::Lenient::from_slice,
                )
                .await?;
            parts.extend(page.items);
            let Some(next) = next else {
                return Ok(parts);
            };
            url = self.resolve_next_page(&next)?;
            if seen.contains(url.as_str()) {
                return Err(FetchError::Decode {
                    endpoint: endpoint::LIST_PARTS,
                    detail: "next_page repeats an earlier page; stopping".into(),
                });
            }
        }
        Err(FetchError::Decode {
            endpoint: endpoint::LIST_PARTS,
            detail: format!("more than {MAX_PART_PAGES} pages of parts; stopping"),
        })
    }

    /// Retrieve User: the display name of user `id`, if Vault knows one.
    pub async fn user_name(&mut self, id: u64) -> Result<Option<String>, FetchError> {
        let url = self.api_url(&["objects", "users", &id.to_string()]);
        let body = self.call_raw(endpoint::USER, url).await?;
        let users: wire::UsersResponse = decode(endpoint::USER, &body, &self.red)?;
        Ok(users
            .users
            .into_iter()
            .filter_map(|n| n.user)
            .find(|u| u.id.is_none_or(|u| u == id))
            .and_then(|u| u.display_name()))
    }

    /// Ends the API session (on shutdown), so it does not linger until its
    /// inactivity timeout. Errors are only logged: we are leaving anyway.
    pub async fn logout(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        let url = self.api_url(&["session"]);
        let req = self.request(reqwest::Method::DELETE, url, Some(&session));
        let sent = self
            .limiter
            .send(req, endpoint::LOGOUT, self.timeout, self.max_body, || {
                self.calls.record(endpoint::LOGOUT)
            })
            .await;
        match sent {
            Ok(_) => tracing::debug!("vault session ended"),
            Err(e) => tracing::debug!(error = %e, "vault logout failed"),
        }
    }

    /// `{base}/api/{version}/{segments...}`.
    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().push("api").push(&self.cfg.api_version);
            p.extend(segments);
        }
        url
    }

    fn file_staging_url(&self, tail: &[&str]) -> Url {
        let mut segs = vec!["services", "file_staging", "upload"];
        segs.extend_from_slice(tail);
        self.api_url(&segs)
    }

    /// `next_page` may be absolute or a path; either way it must stay on the
    /// Vault's own origin, since the session id goes with it.
    fn resolve_next_page(&self, next: &str) -> Result<Url, FetchError> {
        let url = self.base.join(next).map_err(|e| FetchError::Decode {
            endpoint: endpoint::LIST_PARTS,
            detail: format!("next_page is not a URL: {e}"),
        })?;
        if url.origin() != self.base.origin() {
            return Err(FetchError::Decode {
                endpoint: endpoint::LIST_PARTS,
                detail: format!(
                    "next_page points to another host ({}); refusing to send the session there",
                    self.red.text(url.host_str().unwrap_or("?"), TOKEN_CHARS)
                ),
            });
        }
        Ok(url)
    }

    fn request(
        &self,
        method: reqwest::Method,
        url: Url,
        session: Option<&Secret>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, url).header(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json"),
        );
        req = match &self.client_id {
            Some(id) => req.header("X-VaultAPI-ClientID", id.clone()),
            // Not a valid header value: reqwest reports it on sending.
            None => req.header("X-VaultAPI-ClientID", &self.cfg.client_id),
        };
        if let Some(s) = session {
            req = req.header("Authorization", s.expose());
        }
        req
    }

    fn note_headers(&mut self, headers: &reqwest::header::HeaderMap) {
        let limit = header_u64(headers, "X-VaultAPI-BurstLimit");
        let remaining = header_u64(headers, "X-VaultAPI-BurstLimitRemaining");
        if limit.is_some() || remaining.is_some() {
            self.burst.limit = limit.or(self.burst.limit);
            self.burst.remaining = remaining;
        }
        self.burst.response_delay_ms = header_u64(headers, "X-VaultAPI-ResponseDelay");
    }

    /// An authenticated call whose payload is in `data`; returns it with
    /// `responseDetails.next_page`.
    async fn call<T>(
        &mut self,
        endpoint: &'static str,
        method: reqwest::Method,
        url: Url,
        decode: fn(&[u8]) -> serde_json::Result<T>,
    ) -> Result<(T, Option<String>), FetchError> {
        let answer = self.call_with_relogin(endpoint, method, url).await?;
        let Some(data) = answer.data.clone().and_then(|r| answer.body.get(r)) else {
            return Err(FetchError::Decode {
                endpoint,
                detail: "SUCCESS without `data`".into(),
            });
        };
        let value = decode(data).map_err(|e| FetchError::Decode {
            endpoint,
            // serde quotes the offending value, which came from upstream.
            detail: format!(
                "unexpected `data`: {}",
                self.red.text(&e.to_string(), MESSAGE_CHARS)
            ),
        })?;
        Ok((value, answer.next_page))
    }

    /// An authenticated GET whose body the caller decodes.
    async fn call_raw(
        &mut self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<bytes::Bytes, FetchError> {
        self.call_with_relogin(endpoint, reqwest::Method::GET, url)
            .await
            .map(|a| a.body)
    }

    /// An authenticated call with the re-login rules described at the top;
    /// returns the body of a SUCCESS.
    async fn call_with_relogin(
        &mut self,
        endpoint: &'static str,
        method: reqwest::Method,
        url: Url,
    ) -> Result<Answer, FetchError> {
        let mut fresh = false;
        if self.session.is_none() {
            self.login().await?;
            fresh = true;
        }
        match self.exchange(endpoint, method.clone(), url.clone()).await {
            Err(e) if is_invalid_session(&e) => {}
            other => {
                if other.is_ok() {
                    self.version_suspect = false;
                }
                return other;
            }
        }
        if fresh {
            return Err(self.version_error(endpoint).await);
        }
        if self.version_suspect && self.session_still_valid().await? {
            return Err(self.version_error(endpoint).await);
        }
        self.session = None;
        self.login().await?;
        match self.exchange(endpoint, method, url).await {
            Err(e) if is_invalid_session(&e) => Err(self.version_error(endpoint).await),
            other => other,
        }
    }

    /// One request with the current session, checked by Vault's rules.
    async fn exchange(
        &mut self,
        endpoint: &'static str,
        method: reqwest::Method,
        url: Url,
    ) -> Result<Answer, FetchError> {
        let req = self.request(method, url, self.session.as_ref());
        let resp = self
            .limiter
            .send(req, endpoint, self.timeout, self.max_body, || {
                self.calls.record(endpoint)
            })
            .await?;
        self.note_headers(&resp.headers);
        check_http(endpoint, &resp, &self.red)?;
        let env: wire::Envelope = decode(endpoint, &resp.body, &self.red)?;
        check_status(
            endpoint,
            env.response_status.as_deref(),
            &env.errors,
            env.error_type.as_deref(),
            env.response_message.as_deref(),
            &self.red,
        )?;
        // Where `data` sits in the body, so that the caller decodes just
        // that instead of parsing the envelope a second time.
        let data = env.data.map(|d| {
            let start = (d.get().as_ptr() as usize).saturating_sub(resp.body.as_ptr() as usize);
            start..start + d.get().len()
        });
        let next_page = env.response_details.and_then(|d| d.next_page);
        Ok(Answer {
            body: resp.body,
            data,
            next_page,
        })
    }

    /// `POST /api/{version}/auth`.
    async fn login(&mut self) -> Result<(), FetchError> {
        let url = self.api_url(&["auth"]);
        let form = [
            ("username", self.cfg.username.as_str()),
            ("password", self.cfg.password.expose()),
        ];
        let body = serde_urlencoded::to_string(form).map_err(|e| FetchError::Auth {
            endpoint: endpoint::AUTH,
            detail: format!("cannot encode the login form: {e}"),
        })?;
        let req = self
            .request(reqwest::Method::POST, url, None)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        let resp = self
            .limiter
            .send(req, endpoint::AUTH, self.timeout, self.max_body, || {
                self.calls.record(endpoint::AUTH);
                self.logins += 1;
            })
            .await?;
        self.note_headers(&resp.headers);
        check_http(endpoint::AUTH, &resp, &self.red)?;
        let auth: wire::AuthResponse = decode(endpoint::AUTH, &resp.body, &self.red)?;
        let user = self.cfg.username.clone();
        if let Err(e) = check_status(
            endpoint::AUTH,
            auth.response_status.as_deref(),
            &auth.errors,
            auth.error_type.as_deref(),
            None,
            &self.red,
        ) {
            return Err(match e {
                e if is_invalid_session(&e) => self.version_error_text(endpoint::AUTH, None),
                FetchError::Auth { detail, .. } => FetchError::Auth {
                    endpoint: endpoint::AUTH,
                    detail: format!(
                        "login as {user} refused: {detail}. Check username and the password \
                         secret; logins back off exponentially so the account is not locked"
                    ),
                },
                other => other,
            });
        }
        let session = match auth.session_id {
            Some(s) if !s.trim().is_empty() => Secret::new(s),
            _ => {
                return Err(FetchError::Decode {
                    endpoint: endpoint::AUTH,
                    detail: "login SUCCESS without sessionId".into(),
                })
            }
        };
        // Masked from now on, and after it is replaced: an upstream may
        // echo the Authorization header of any later request.
        self.red.add_session(&session);
        self.check_vault_id(auth.vault_id, &auth.vault_ids)?;
        tracing::debug!(user = %user, vault_id = ?auth.vault_id, "logged in to vault");
        self.session = Some(session);
        Ok(())
    }

    /// A login can land in the user's *other* Vault when the DNS does not
    /// match; compare with the expected id, learning it on first login from
    /// the `vaultIds` entry whose URL is ours.
    fn check_vault_id(
        &mut self,
        got: Option<u64>,
        ids: &[wire::VaultRef],
    ) -> Result<(), FetchError> {
        let Some(got) = got else {
            return Err(FetchError::Decode {
                endpoint: endpoint::AUTH,
                detail: "login SUCCESS without vaultId".into(),
            });
        };
        let expected = self.expected_vault_id.or_else(|| {
            ids.iter()
                .find(|v| {
                    v.url
                        .as_deref()
                        .and_then(|u| Url::parse(u).ok())
                        .is_some_and(|u| {
                            u.host_str() == self.base.host_str()
                                && u.port_or_known_default() == self.base.port_or_known_default()
                        })
                })
                .and_then(|v| v.id)
        });
        match expected {
            Some(want) if want != got => {
                let name = ids
                    .iter()
                    .find(|v| v.id == Some(got))
                    .and_then(|v| v.name.as_deref())
                    .map(|n| self.red.text(n, TOKEN_CHARS))
                    .unwrap_or_default();
                Err(FetchError::Auth {
                    endpoint: endpoint::AUTH,
                    detail: format!(
                        "login landed in Vault {got} {name:?}, not the expected Vault {want}; \
                         check the target's url (the Vault's DNS name) and vault_id"
                    ),
                })
            }
            _ => {
                self.expected_vault_id = Some(expected.unwrap_or(got));
                Ok(())
            }
        }
    }

    /// `GET /api/` with the current session: true if the session works.
    async fn session_still_valid(&mut self) -> Result<bool, FetchError> {
        match self.versions().await {
            Ok(_) => Ok(true),
            Err(e) if is_invalid_session(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `GET /api/`: the versions this Vault serves.
    pub async fn versions(&mut self) -> Result<Vec<String>, FetchError> {
        let mut url = self.base.clone();
        if let Ok(mut p) = url.path_segments_mut() {
            p.pop_if_empty().push("api").push("");
        }
        let req = self.request(reqwest::Method::GET, url, self.session.as_ref());
        let resp = self
            .limiter
            .send(
                req,
                endpoint::API_VERSIONS,
                self.timeout,
                self.max_body,
                || self.calls.record(endpoint::API_VERSIONS),
            )
            .await?;
        self.note_headers(&resp.headers);
        check_http(endpoint::API_VERSIONS, &resp, &self.red)?;
        let v: wire::VersionsResponse = decode(endpoint::API_VERSIONS, &resp.body, &self.red)?;
        check_status(
            endpoint::API_VERSIONS,
            v.response_status.as_deref(),
            &v.errors,
            None,
            None,
            &self.red,
        )?;
        Ok(v.values.into_keys().collect())
    }

    async fn version_error(&mut self, endpoint: &'static str) -> FetchError {
        self.version_suspect = true;
        let served = match self.versions().await {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::debug!(error = %e, "could not list the Vault's API versions");
                None
            }
        };
        self.version_error_text(endpoint, served)
    }

    fn version_error_text(
        &self,
        endpoint: &'static str,
        served: Option<Vec<String>>,
    ) -> FetchError {
        let v = &self.cfg.api_version;
        let detail = match served {
            Some(list) if !list.iter().any(|s| s == v) => format!(
                "INVALID_SESSION_ID right after a fresh login: this Vault does not serve api_version \
                 {v}; it serves {}. Set api_version to one of them",
                self.red.text(&list.join(", "), MESSAGE_CHARS)
            ),
            _ => format!(
                "INVALID_SESSION_ID right after a fresh login: api_version {v} is not served by this \
                 Vault or the user lacks API access / the File Staging permission. Check api_version \
                 (GET /api/ lists the versions) and the user's permissions"
            ),
        };
        FetchError::Auth { endpoint, detail }
    }
}

/// `INVALID_SESSION_ID` travels as an `Api` error inside this module; `call`
/// turns it into a re-login or an `Auth` error before it leaves.
fn is_invalid_session(e: &FetchError) -> bool {
    matches!(e, FetchError::Api { error_type, .. } if error_type == INVALID_SESSION_ID)
}

/// A processed Vault request is HTTP 200; anything else came from a gateway
/// or a broken Vault.
fn check_http(
    endpoint: &'static str,
    resp: &http::Response,
    red: &Redactor,
) -> Result<(), FetchError> {
    let status = resp.status.as_u16();
    if status == 200 {
        return Ok(());
    }
    if status == 429 {
        return Err(FetchError::RateLimited {
            endpoint,
            retry_after: header_u64(&resp.headers, "Retry-After").map(Duration::from_secs),
        });
    }
    Err(FetchError::HttpStatus {
        endpoint,
        status,
        snippet: red.snippet(&resp.body, SNIPPET_CHARS),
    })
}

fn decode<'a, T: serde::Deserialize<'a>>(
    endpoint: &'static str,
    body: &'a [u8],
    red: &Redactor,
) -> Result<T, FetchError> {
    serde_json::from_slice(body).map_err(|e| FetchError::Decode {
        endpoint,
        detail: if body.first().is_some_and(|b| *b == b'<') {
            format!(
                "expected JSON, got HTML or XML (a sign-in page or proxy?): {}",
                red.snippet(body, SNIPPET_CHARS)
            )
        } else {
            // serde quotes the offending value, which came from upstream.
            red.text(&e.to_string(), MESSAGE_CHARS)
        },
    })
}

/// Decides on `responseStatus` and the error `type`, never on messages.
fn check_status(
    endpoint: &'static str,
    status: Option<&str>,
    errors: &[wire::ApiErrorItem],
    top_error_type: Option<&str>,
    response_message: Option<&str>,
    red: &Redactor,
) -> Result<(), FetchError> {
    match status {
        Some("SUCCESS") | Some("WARNING") => return Ok(()),
        Some("FAILURE") | Some("EXCEPTION") => {}
        Some(other) => {
            return Err(FetchError::Decode {
                endpoint,
                detail: format!(
                    "unknown responseStatus \"{}\"",
                    red.text(other, TOKEN_CHARS)
                ),
            })
        }
        None => {
            return Err(FetchError::Decode {
                endpoint,
                detail: "no responseStatus: not a Vault API response".into(),
            })
        }
    }
    let first = errors.first();
    // Both are upstream text: decisions below compare the type whole, but
    // what goes into the error is masked and bounded.
    let raw_type = first
        .and_then(|e| e.error_type.as_deref())
        .or(top_error_type)
        .unwrap_or("UNEXPECTED_ERROR");
    let message = red.text(
        first
            .and_then(|e| e.message.as_deref())
            .or(response_message)
            .unwrap_or(""),
        MESSAGE_CHARS,
    );
    // The re-login logic looks for this one type in the error.
    let error_type = if raw_type == INVALID_SESSION_ID {
        raw_type.to_string()
    } else {
        red.text(raw_type, TOKEN_CHARS)
    };
    if raw_type == "API_LIMIT_EXCEEDED" {
        return Err(FetchError::RateLimited {
            endpoint,
            retry_after: None,
        });
    }
    if AUTH_ERROR_TYPES.contains(&raw_type) {
        return Err(FetchError::Auth {
            endpoint,
            detail: format!("{error_type} ({message})"),
        });
    }
    Err(FetchError::Api {
        endpoint,
        error_type,
        message,
    })
}

/// Converts a listed session to the model; `None` for an entry without id.
pub fn to_model(s: wire::UploadSession, now: UnixMillis) -> Option<Session> {
    let id = s.id.filter(|i| !i.is_empty())?;
    let expires = s.expiration_date.as_deref().and_then(parse_timestamp);
    let state = match expires {
        Some(e) if e <= now => SessionState::Expired,
        _ => SessionState::Active,
    };
    Some(Session {
        id,
        owner_id: s
            .owner
            .map_or_else(|| "unknown".to_string(), |o| o.to_string()),
        owner_name: None,
        path: s.path,
        state,
        size: s.size,
        uploaded: s.uploaded.unwrap_or(0),
        parts: s.uploaded_parts.unwrap_or(0),
        created: s.created_date.as_deref().and_then(parse_timestamp),
        expires,
        last_upload: s.last_uploaded_date.as_deref().and_then(parse_timestamp),
        files: None,
    })
}
