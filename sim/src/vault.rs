//! One simulated Vault: users, login sessions, upload sessions, rate
//! limits, and the handlers of its API.
//!
//! Locking: all state sits behind one mutex, never held across an await
//! (part bodies are streamed with the lock released and the session is
//! re-checked afterwards).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_LENGTH, TRANSFER_ENCODING,
};
use hyper::{Method, Request, Response, StatusCode};
use md5::{Digest, Md5};
use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;

use super::clock::{self, format_ts, SimClock};
use super::cursor;
use super::faults::{self, lock, Endpoint, FaultKind, FaultSet};
use super::http::{Aborted, HttpResponse, InFlight, ShutdownSignal, SimBody};
mod route;
mod wire;

pub(crate) use route::*;
pub(crate) use wire::*;

use super::{
    SessionSeed, SessionView, UserSpec, VaultSpec, MAX_FILE_SIZE, MAX_PARTS, MAX_PART_SIZE,
    MIN_PART_SIZE,
};

/// `Content-Type` of every Vault answer.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// Largest form body accepted (`/auth`, create session).
const MAX_FORM_BODY: usize = 64 * 1024;
/// Login sessions end this long after creation, active or not.
const LOGIN_MAX_LIFETIME: Duration = Duration::from_secs(48 * 3600);
const BURST_WINDOW: Duration = Duration::from_secs(5 * 60);
const AUTH_WINDOW: Duration = Duration::from_secs(60);
/// Characters of the session id echoed in `X-VaultAPI-TruncatedSessionId`.
const TRUNCATED_SESSION_ID_LEN: usize = 12;
/// Job ids of commits start here (looks like a real job id).
const FIRST_JOB_ID: u64 = 70301;

const INVALID_SESSION_MSG: &str = "Invalid or expired session ID.";

// -------------------------------------------------------------------- state

struct UserState {
    spec: UserSpec,
    failures: u32,
    locked: bool,
    /// Start and count of the current `/auth` rate window.
    auth_window: Option<(OffsetDateTime, u32)>,
}

struct Login {
    user_id: u64,
    created: OffsetDateTime,
    last_used: OffsetDateTime,
}

/// Size and md5 of one uploaded part (the bytes are not kept).
#[derive(Debug, Clone)]
struct Part {
    size: u64,
    md5: String,
}

/// One upload session. `uploaded`/`uploaded_parts` are what is listed;
/// real uploads keep them equal to the sums of `parts`, control calls may
/// set them otherwise.
#[derive(Debug, Clone)]
struct Upload {
    id: String,
    path: String,
    owner: u64,
    size: u64,
    created: OffsetDateTime,
    expiration: OffsetDateTime,
    last_uploaded: OffsetDateTime,
    uploaded: u64,
    uploaded_parts: u32,
    overwrite: bool,
    parts: Vec<Part>,
}

impl Upload {
    fn view(&self) -> SessionView {
        SessionView {
            id: self.id.clone(),
            path: self.path.clone(),
            owner: self.owner,
            size: self.size,
            uploaded: self.uploaded,
            uploaded_parts: self.uploaded_parts,
            part_records: u32::try_from(self.parts.len()).unwrap_or(u32::MAX),
            created: self.created,
            expiration: self.expiration,
            last_uploaded: self.last_uploaded,
        }
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        now > self.expiration
    }

    /// Recomputes the listed progress from the part records.
    fn sync_progress(&mut self) {
        self.uploaded = self.parts.iter().map(|p| p.size).sum();
        self.uploaded_parts = u32::try_from(self.parts.len()).unwrap_or(u32::MAX);
    }
}

/// Fixed burst window.
#[derive(Default)]
struct Burst {
    start: Option<OffsetDateTime>,
    used: u32,
}

/// Burst accounting of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BurstTick {
    remaining: u32,
    delayed: bool,
}

impl Burst {
    fn roll(&mut self, now: OffsetDateTime) {
        if self.start.is_none_or_expired(now, BURST_WINDOW) {
            self.start = Some(now);
            self.used = 0;
        }
    }

    fn tick(&mut self, now: OffsetDateTime, limit: u32) -> BurstTick {
        self.roll(now);
        if self.used < limit {
            self.used += 1;
            BurstTick {
                remaining: limit - self.used,
                delayed: false,
            }
        } else {
            BurstTick {
                remaining: 0,
                delayed: true,
            }
        }
    }
}

/// `Option<window start>` helper: is there no window, or has it ended?
trait WindowExt {
    fn is_none_or_expired(&self, now: OffsetDateTime, len: Duration) -> bool;
}

impl WindowExt for Option<OffsetDateTime> {
    fn is_none_or_expired(&self, now: OffsetDateTime, len: Duration) -> bool {
        match self {
            None => true,
            Some(start) => now >= clock::add(*start, len),
        }
    }
}

struct State {
    users: Vec<UserState>,
    logins: HashMap<String, Login>,
    uploads: Vec<Upload>,
    next_job_id: u64,
    burst: Burst,
    /// Delay of responses once the burst limit is spent (starts as the
    /// spec's; control calls change it).
    response_delay: Duration,
    counts: HashMap<Endpoint, u64>,
    last_client_id: Option<String>,
    missing_client_id: u64,
}

impl State {
    /// Drops expired-and-purgeable upload sessions and dead logins.
    fn purge(&mut self, now: OffsetDateTime, spec: &VaultSpec) {
        if let Some(after) = spec.purge_after_expiry {
            self.uploads
                .retain(|u| now <= clock::add(u.expiration, after));
        }
        let idle = spec.session_idle_timeout;
        self.logins.retain(|_, l| login_alive(l, now, idle));
    }

    fn upload_mut(&mut self, id: &str) -> Option<&mut Upload> {
        self.uploads.iter_mut().find(|u| u.id == id)
    }
}

fn login_alive(l: &Login, now: OffsetDateTime, idle: Duration) -> bool {
    now <= clock::add(l.last_used, idle) && now <= clock::add(l.created, LOGIN_MAX_LIFETIME)
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
struct Caller {
    user_id: u64,
    session_id: String,
    admin: bool,
    file_staging: bool,
}

// -------------------------------------------------------------------- reply

/// A response before the vault headers are added.
struct Reply {
    status: StatusCode,
    content_type: String,
    body: Bytes,
    /// Gateway-style fault answers carry no Vault headers.
    vault_headers: bool,
    caller: Option<Caller>,
    /// A generated body sent instead of `body` (oversized faults).
    generated: Option<SimBody>,
}

impl Reply {
    fn json(status: StatusCode, body: Bytes) -> Self {
        Self {
            status,
            content_type: JSON_CONTENT_TYPE.to_owned(),
            body,
            vault_headers: true,
            caller: None,
            generated: None,
        }
    }

    fn generated(body: SimBody) -> Self {
        Self {
            generated: Some(body),
            ..Self::json(StatusCode::OK, Bytes::new())
        }
    }

    fn gateway(status: StatusCode, content_type: &str, body: Bytes) -> Self {
        Self {
            content_type: content_type.to_owned(),
            vault_headers: false,
            ..Self::json(status, body)
        }
    }
}

/// Per-request context from the HTTP layer.
pub(crate) struct Ctx<'a> {
    /// Path prefix the request came in under ("" or `/vaults/{name}`).
    pub(crate) mount: &'a str,
    /// `Host` header (or the listen address), for absolute URLs.
    pub(crate) host: &'a str,
    /// Every vault of the simulator, to resolve other vault ids at login.
    pub(crate) peers: &'a [Arc<Vault>],
    pub(crate) shutdown: &'a ShutdownSignal,
}

const SIGN_IN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign In - Veeva Vault</title></head>\n<body><form method=\"post\" action=\"/auth/login\"><h1>Sign in to Vault</h1>\n<label>User Name <input name=\"username\"></label>\n<label>Password <input name=\"password\" type=\"password\"></label>\n<button type=\"submit\">Continue</button></form></body></html>\n";

/// The body of an `Oversized` fault: valid JSON of exactly `bytes` bytes
/// when that is at least the envelope's size, else a prefix of it;
/// generated while it is sent.
fn oversized_body(bytes: usize, chunked: bool) -> SimBody {
    const HEAD: &str = r#"{"responseStatus":"SUCCESS","padding":""#;
    const TAIL: &str = r#""}"#;
    SimBody::padded(HEAD, TAIL, bytes, chunked)
}

// -------------------------------------------------------------------- vault

/// A simulated Vault.
pub(crate) struct Vault {
    pub(crate) spec: VaultSpec,
    clock: Arc<SimClock>,
    state: Mutex<State>,
    faults: FaultSet,
    /// Key of the page cursors, so clients cannot forge them.
    cursor_key: [u8; 16],
    in_flight: InFlight,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("name", &self.spec.name)
            .field("vault_id", &self.spec.vault_id)
            .finish_non_exhaustive()
    }
}

impl Vault {
    pub(crate) fn new(spec: VaultSpec, clock: Arc<SimClock>) -> Self {
        let users = spec
            .users
            .iter()
            .map(|u| UserState {
                spec: u.clone(),
                failures: 0,
                locked: false,
                auth_window: None,
            })
            .collect();
        let response_delay = spec.response_delay;
        Self {
            spec,
            clock,
            state: Mutex::new(State {
                users,
                logins: HashMap::new(),
                uploads: Vec::new(),
                next_job_id: FIRST_JOB_ID,
                burst: Burst::default(),
                response_delay,
                counts: HashMap::new(),
                last_client_id: None,
                missing_client_id: 0,
            }),
            faults: FaultSet::default(),
            cursor_key: rand::rng().random(),
            in_flight: InFlight::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn faults(&self) -> &FaultSet {
        &self.faults
    }

    pub(crate) fn in_flight(&self) -> &InFlight {
        &self.in_flight
    }

    /// Serves one request whose path, after the mount point, is `rest`.
    pub(crate) async fn serve(
        &self,
        req: Request<Incoming>,
        rest: &str,
        ctx: &Ctx<'_>,
    ) -> Result<HttpResponse, Aborted> {
        let _counted = self.in_flight.enter();
        let route = parse_route(req.method(), rest);
        let endpoint = route.as_ref().ok().map(|r| r.op.endpoint());
        let now = self.now();
        let (burst, response_delay) = {
            let mut st = self.lock();
            st.purge(now, &self.spec);
            match req
                .headers()
                .get("x-vaultapi-clientid")
                .and_then(|v| v.to_str().ok())
            {
                Some(id) => st.last_client_id = Some(id.to_owned()),
                None => st.missing_client_id += 1,
            }
            if let Some(ep) = endpoint {
                *st.counts.entry(ep).or_default() += 1;
            }
            (st.burst.tick(now, self.spec.burst_limit), st.response_delay)
        };
        let fault = endpoint.and_then(|ep| self.faults.take(ep));
        let mut retry_after = None;
        let reply = match fault {
            None => self.handle(route, req, ctx).await,
            Some(FaultKind::Hang) => {
                ctx.shutdown.wait().await;
                return Err(Aborted);
            }
            Some(FaultKind::Reset) => return Err(Aborted),
            Some(FaultKind::Delay(d)) => {
                ctx.shutdown.sleep(d).await;
                self.handle(route, req, ctx).await
            }
            Some(FaultKind::TruncatedJson) => {
                let mut reply = self.handle(route, req, ctx).await;
                reply.body = reply.body.slice(..reply.body.len() / 2);
                reply
            }
            Some(FaultKind::VaultFailure {
                error_type,
                message,
            }) => Reply::json(StatusCode::OK, failure_body(&error_type, &message, None)),
            Some(FaultKind::HttpStatus {
                status,
                content_type,
                body,
            }) => Reply::gateway(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &content_type,
                Bytes::from(body),
            ),
            Some(FaultKind::HtmlSignIn) => Reply::gateway(
                StatusCode::OK,
                "text/html;charset=UTF-8",
                Bytes::from_static(SIGN_IN_PAGE.as_bytes()),
            ),
            Some(FaultKind::MalformedJson) => Reply::json(
                StatusCode::OK,
                Bytes::from_static(b"{\"responseStatus\":\"SUCCESS\",\"data\":[{\"path\":,}"),
            ),
            Some(FaultKind::Oversized { bytes }) => Reply::generated(oversized_body(bytes, false)),
            Some(FaultKind::OversizedChunked { bytes }) => {
                Reply::generated(oversized_body(bytes, true))
            }
            Some(FaultKind::UnknownFields) => {
                let mut reply = self.handle(route, req, ctx).await;
                if let Some(body) = faults::with_unknown_fields(&reply.body) {
                    reply.body = body;
                }
                reply
            }
            Some(FaultKind::OddRecords { records }) => {
                let mut reply = self.handle(route, req, ctx).await;
                if let Some(body) = faults::with_odd_records(&reply.body, &records) {
                    reply.body = body;
                }
                reply
            }
            Some(FaultKind::WrongVersionTrap) => {
                Reply::json(StatusCode::OK, VaultError::invalid_session().body())
            }
            Some(FaultKind::ReflectRequest { status }) => {
                let (parts, body) = req.into_parts();
                let body = Limited::new(body, faults::REFLECT_BODY_MAX)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let echo = faults::reflection(&parts.method, &parts.uri, &parts.headers, &body);
                if status == 200 {
                    Reply::json(
                        StatusCode::OK,
                        failure_body_with_message("UNEXPECTED_ERROR", &echo),
                    )
                } else {
                    Reply::gateway(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        "text/plain; charset=utf-8",
                        Bytes::from(echo),
                    )
                }
            }
            // Vault itself delays rather than rejects; a 429 comes from a
            // gateway in front of it.
            Some(FaultKind::TooManyRequests { retry_after: secs }) => {
                retry_after = Some(secs);
                Reply::gateway(
                    StatusCode::TOO_MANY_REQUESTS,
                    "application/json",
                    Bytes::from_static(br#"{"detail":"Too many requests"}"#),
                )
            }
        };
        let mut resp = self.finish(reply, burst, response_delay);
        if let Some(secs) = retry_after {
            put(resp.headers_mut(), "retry-after", &secs.to_string());
        }
        if burst.delayed {
            ctx.shutdown.sleep(response_delay).await;
        }
        Ok(resp)
    }

    /// Adds the headers Vault puts on every response.
    fn finish(&self, reply: Reply, burst: BurstTick, response_delay: Duration) -> HttpResponse {
        let body = reply
            .generated
            .unwrap_or_else(|| SimBody::whole(reply.body));
        let mut resp = Response::new(body);
        *resp.status_mut() = reply.status;
        let h = resp.headers_mut();
        put(h, "content-type", &reply.content_type);
        if reply.vault_headers {
            put(
                h,
                "x-vaultapi-burstlimit",
                &self.spec.burst_limit.to_string(),
            );
            put(
                h,
                "x-vaultapi-burstlimitremaining",
                &burst.remaining.to_string(),
            );
            put(h, "x-vaultapi-vaultid", &self.spec.vault_id.to_string());
            put(h, "x-vaultapi-executionid", &execution_id());
            if let Some(c) = &reply.caller {
                put(h, "x-vaultapi-userid", &c.user_id.to_string());
                let cut = c
                    .session_id
                    .get(..TRUNCATED_SESSION_ID_LEN)
                    .unwrap_or(&c.session_id);
                put(h, "x-vaultapi-truncatedsessionid", cut);
            }
            if burst.delayed {
                put(
                    h,
                    "x-vaultapi-responsedelay",
                    &response_delay.as_millis().to_string(),
                );
            }
        }
        resp
    }

    async fn handle(
        &self,
        route: Result<Route, RouteError>,
        req: Request<Incoming>,
        ctx: &Ctx<'_>,
    ) -> Reply {
        let route = match route {
            Ok(r) => r,
            Err(RouteError::NotFound) => {
                let e = VaultError::new(
                    ErrorType::MalformedUrl,
                    "The resource at the requested URL could not be found.",
                );
                return Reply::json(StatusCode::NOT_FOUND, e.body());
            }
            Err(RouteError::Method) => {
                let e = VaultError::new(
                    ErrorType::MethodNotSupported,
                    format!(
                        "The HTTP method [{}] is not supported for this resource.",
                        req.method()
                    ),
                );
                return Reply::json(StatusCode::METHOD_NOT_ALLOWED, e.body());
            }
        };
        let mut caller = None;
        let body = match self.dispatch(route, req, ctx, &mut caller).await {
            Ok(body) => body,
            Err(e) => e.body(),
        };
        Reply {
            caller,
            ..Reply::json(StatusCode::OK, body)
        }
    }

    async fn dispatch(
        &self,
        route: Route,
        req: Request<Incoming>,
        ctx: &Ctx<'_>,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        if let Some(v) = &route.version {
            // The documented trap: an unserved version looks like an ended
            // session. Logins still work, which is what makes it a trap.
            if route.op != Op::Auth && !self.spec.api_versions.contains(v) {
                return Err(VaultError::invalid_session());
            }
        }
        let version = route.version.unwrap_or_default();
        let headers = req.headers();
        match route.op {
            Op::Auth => {
                let form = read_form(req.into_body()).await;
                self.auth(form?, ctx, caller)
            }
            Op::ApiVersions => self.api_versions(headers, ctx, caller),
            Op::KeepAlive => {
                self.authenticate(&mut self.lock(), headers, self.now(), caller)?;
                Ok(to_json(&StatusJson {
                    response_status: SUCCESS,
                }))
            }
            Op::Logout => {
                let mut st = self.lock();
                let who = self.authenticate(&mut st, headers, self.now(), caller)?;
                st.logins.remove(&who.session_id);
                Ok(to_json(&StatusJson {
                    response_status: SUCCESS,
                }))
            }
            Op::List => self.list(headers, caller),
            Op::Create => {
                let headers = headers.clone();
                let form = read_form(req.into_body()).await;
                self.create(&headers, form, caller)
            }
            Op::Details(id) => self.details(headers, &id, caller),
            Op::User(id) => self.retrieve_user(headers, id, caller),
            Op::Parts(id) => {
                let query = req.uri().query().unwrap_or("");
                self.parts(headers, &id, query, &version, ctx, caller)
            }
            Op::Upload(id) => self.upload(req, &id, caller).await,
            Op::Commit(id) => self.commit(headers, &id, caller),
            Op::Abort(id) => self.abort(headers, &id, caller),
        }
    }

    // ------------------------------------------------------------ handlers

    /// Resolves the login session of `Authorization` (`{id}` or `Bearer
    /// {id}`), refreshing its idle timer.
    fn authenticate(
        &self,
        st: &mut State,
        headers: &HeaderMap,
        now: OffsetDateTime,
        caller: &mut Option<Caller>,
    ) -> Result<Caller, VaultError> {
        let raw = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        let sid = match raw.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => raw,
        };
        let idle = self.spec.session_idle_timeout;
        let login = st
            .logins
            .get_mut(sid)
            .filter(|l| login_alive(l, now, idle))
            .ok_or_else(VaultError::invalid_session)?;
        login.last_used = now;
        let user_id = login.user_id;
        let user = st
            .users
            .iter()
            .find(|u| u.spec.user_id == user_id && u.spec.active)
            .ok_or_else(VaultError::invalid_session)?;
        let who = Caller {
            user_id,
            session_id: sid.to_owned(),
            admin: user.spec.admin,
            file_staging: user.spec.file_staging,
        };
        *caller = Some(who.clone());
        Ok(who)
    }

    /// [`authenticate`](Self::authenticate) plus the File Staging permission.
    fn staging_caller(
        &self,
        st: &mut State,
        headers: &HeaderMap,
        now: OffsetDateTime,
        caller: &mut Option<Caller>,
    ) -> Result<Caller, VaultError> {
        let who = self.authenticate(st, headers, now, caller)?;
        if who.file_staging {
            Ok(who)
        } else {
            Err(VaultError::insufficient())
        }
    }

    fn auth(
        &self,
        form: Vec<(String, String)>,
        ctx: &Ctx<'_>,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        use ErrorType::*;
        let username = param(&form, "username").unwrap_or("");
        let password = param(&form, "password").unwrap_or("");
        let incorrect = || {
            VaultError::auth(
                UsernameOrPasswordIncorrect,
                format!("Authentication failed for user: {username}."),
            )
        };
        let now = self.now();
        let spec = &self.spec;
        let mut st = self.lock();
        let user = st
            .users
            .iter_mut()
            .find(|u| !username.is_empty() && u.spec.username.eq_ignore_ascii_case(username))
            .ok_or_else(incorrect)?;
        let window = match user.auth_window {
            Some((start, n)) if !Some(start).is_none_or_expired(now, AUTH_WINDOW) => (start, n),
            _ => (now, 0),
        };
        let count = window.1.saturating_add(1);
        user.auth_window = Some((window.0, count));
        if count > spec.auth_limit_per_minute {
            return Err(VaultError::auth(
                ApiLimitExceeded,
                "API limit exceeded: too many authentication requests for this user.",
            ));
        }
        if password.is_empty() {
            return Err(VaultError::auth(
                NoPasswordProvided,
                "No password was provided.",
            ));
        }
        if user.locked {
            return Err(VaultError::auth(
                UserLockedOut,
                "User is locked out. Contact your Vault administrator.",
            ));
        }
        if password != user.spec.password {
            user.failures = user.failures.saturating_add(1);
            if spec.lockout_after > 0 && user.failures >= spec.lockout_after {
                user.locked = true;
            }
            return Err(incorrect());
        }
        user.failures = 0;
        if !user.spec.active {
            return Err(VaultError::auth(InactiveUser, "User is inactive."));
        }
        let user_id = user.spec.user_id;
        let vault_id = user.spec.login_vault_id_override.unwrap_or(spec.vault_id);
        let session_id = random_hex(128).to_ascii_uppercase();
        st.logins.insert(
            session_id.clone(),
            Login {
                user_id,
                created: now,
                last_used: now,
            },
        );
        drop(st);
        let mut vault_ids = vec![VaultIdJson {
            id: spec.vault_id,
            name: spec.display_name.clone(),
            url: format!("http://{}{}/api", ctx.host, ctx.mount),
        }];
        if vault_id != spec.vault_id {
            vault_ids.push(
                match ctx.peers.iter().find(|p| p.spec.vault_id == vault_id) {
                    Some(p) => VaultIdJson {
                        id: vault_id,
                        name: p.spec.display_name.clone(),
                        url: format!("http://{}/vaults/{}/api", ctx.host, p.spec.name),
                    },
                    None => VaultIdJson {
                        id: vault_id,
                        name: format!("Vault {vault_id}"),
                        url: format!("http://{}/vaults/vault-{vault_id}/api", ctx.host),
                    },
                },
            );
        }
        *caller = Some(Caller {
            user_id,
            session_id: session_id.clone(),
            admin: false,
            file_staging: false,
        });
        Ok(to_json(&AuthJson {
            response_status: SUCCESS,
            session_id,
            user_id,
            vault_ids,
            vault_id,
        }))
    }

    fn api_versions(
        &self,
        headers: &HeaderMap,
        ctx: &Ctx<'_>,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        self.authenticate(&mut self.lock(), headers, self.now(), caller)?;
        let values = self
            .spec
            .api_versions
            .iter()
            .map(|v| {
                (
                    v.clone(),
                    format!("http://{}{}/api/{v}", ctx.host, ctx.mount),
                )
            })
            .collect();
        Ok(to_json(&VersionsJson {
            response_status: SUCCESS,
            values,
        }))
    }

    fn list(&self, headers: &HeaderMap, caller: &mut Option<Caller>) -> Result<Bytes, VaultError> {
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, self.now(), caller)?;
        let data: Vec<SessionJson<'_>> = st
            .uploads
            .iter()
            .filter(|u| who.admin || u.owner == who.user_id)
            .map(SessionJson::from)
            .collect();
        Ok(to_json(&DataJson::new(data)))
    }

    fn create(
        &self,
        headers: &HeaderMap,
        form: Result<Vec<(String, String)>, VaultError>,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let now = self.now();
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, now, caller)?;
        let form = form?;
        let path = param(&form, "path")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| VaultError::required("path"))?;
        let size = param(&form, "size")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| VaultError::required("size"))?;
        let size: u64 = size.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            VaultError::invalid_data(format!("Invalid value [{size}] for parameter [size]"))
        })?;
        if size > MAX_FILE_SIZE {
            return Err(VaultError::new(
                ErrorType::ExceedsFileMaxSize,
                format!("File size [{size}] exceeds the maximum of {MAX_FILE_SIZE} bytes."),
            ));
        }
        let overwrite = match param(&form, "overwrite").map(str::trim) {
            None | Some("") => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => {
                return Err(VaultError::invalid_data(format!(
                    "Invalid value [{v}] for parameter [overwrite]"
                )))
            }
        };
        let path = normalize_path(path).ok_or_else(|| {
            VaultError::invalid_data(format!("Invalid value [{path}] for parameter [path]"))
        })?;
        if st.uploads.len() >= self.spec.session_limit {
            return Err(VaultError::new(
                ErrorType::OperationNotAllowed,
                format!(
                    "The maximum number of active upload sessions ({}) has been reached.",
                    self.spec.session_limit
                ),
            ));
        }
        let upload = Upload {
            id: random_session_id(),
            path,
            owner: who.user_id,
            size,
            created: now,
            expiration: clock::add(now, self.spec.session_ttl),
            last_uploaded: now,
            uploaded: 0,
            uploaded_parts: 0,
            overwrite,
            parts: Vec::new(),
        };
        let body = to_json(&DataJson::new(CreatedJson {
            path: &upload.path,
            name: upload.path.rsplit('/').next().unwrap_or(&upload.path),
            id: &upload.id,
            expiration_date: format_ts(upload.expiration),
            created_date: format_ts(upload.created),
            last_uploaded_date: format_ts(upload.last_uploaded),
            owner: upload.owner,
            uploaded_parts: upload.uploaded_parts,
            size: upload.size,
            uploaded: upload.uploaded,
            overwrite: upload.overwrite,
        }));
        st.uploads.push(upload);
        Ok(body)
    }

    /// The session `id` if the caller may act on it.
    fn visible<'s>(
        st: &'s mut State,
        id: &str,
        who: &Caller,
    ) -> Result<&'s mut Upload, VaultError> {
        let u = st
            .upload_mut(id)
            .ok_or_else(|| VaultError::invalid_data(format!("Invalid upload session ID [{id}]")))?;
        if who.admin || u.owner == who.user_id {
            Ok(u)
        } else {
            Err(VaultError::insufficient())
        }
    }

    fn details(
        &self,
        headers: &HeaderMap,
        id: &str,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, self.now(), caller)?;
        let u = Self::visible(&mut st, id, &who)?;
        Ok(to_json(&DataJson::new(SessionJson::from(&*u))))
    }

    /// Retrieve User (`GET /api/{version}/objects/users/{id}`): the legacy
    /// users API, `users[].user` with `*__v` fields. Any logged-in user may
    /// read user records.
    fn retrieve_user(
        &self,
        headers: &HeaderMap,
        id: u64,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let mut st = self.lock();
        self.authenticate(&mut st, headers, self.now(), caller)?;
        let vault_id = self.spec.vault_id;
        let u = st
            .users
            .iter()
            .find(|u| u.spec.user_id == id)
            .ok_or_else(|| {
                VaultError::new(ErrorType::UserNotFound, format!("User [{id}] not found."))
            })?;
        let spec = &u.spec;
        Ok(to_json(&serde_json::json!({
            "responseStatus": SUCCESS,
            "users": [{
                "user": {
                    "id": spec.user_id,
                    "user_name__v": spec.username,
                    "user_first_name__v": spec.first_name,
                    "user_last_name__v": spec.last_name,
                    "user_email__v": spec.username,
                    "user_timezone__v": "America/Los_Angeles",
                    "user_locale__v": "en_US",
                    "is_domain_admin__v": false,
                    "active__v": spec.active,
                    "vault_id__v": [vault_id],
                    "security_profile__v": if spec.admin { "vault_owner__v" } else { "document_user__v" },
                }
            }]
        })))
    }

    #[allow(clippy::too_many_arguments)]
    fn parts(
        &self,
        headers: &HeaderMap,
        id: &str,
        query: &str,
        version: &str,
        ctx: &Ctx<'_>,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, self.now(), caller)?;
        let u = Self::visible(&mut st, id, &who)?;
        let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let limit = match param(&query, "limit") {
            None => 1000,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| {
                    VaultError::invalid_data(format!(
                        "Invalid value [{raw}] for parameter [limit]: must be between 1 and 1000"
                    ))
                })?,
        };
        let start = match param(&query, "cursor") {
            None => 0,
            Some(raw) => cursor::decode(&self.cursor_key, id, raw)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| VaultError::invalid_data("Invalid value for parameter [cursor]"))?,
        };
        let end = start.saturating_add(limit).min(u.parts.len());
        let data: Vec<PartJson<'_>> = u
            .parts
            .iter()
            .enumerate()
            .take(end)
            .skip(start)
            .map(|(i, p)| PartJson {
                size: p.size,
                part_number: u32::try_from(i + 1).unwrap_or(u32::MAX),
                part_content_md5: &p.md5,
            })
            .collect();
        let mut out = DataJson::new(data);
        if end < u.parts.len() {
            let next = cursor::encode(&self.cursor_key, id, u32::try_from(end).unwrap_or(u32::MAX));
            let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            let origin = if self.spec.next_page_absolute {
                format!("http://{}", ctx.host)
            } else {
                String::new()
            };
            out.response_details = Some(NextPageJson {
                next_page: format!(
                    "{origin}{}/api/{version}/services/file_staging/upload/{id}/parts?cursor={next}&limit={limit}",
                    ctx.mount
                ),
            });
        }
        Ok(to_json(&out))
    }

    async fn upload(
        &self,
        req: Request<Incoming>,
        id: &str,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let (head, body) = req.into_parts();
        let check = |st: &mut State, caller: &mut Option<Caller>| -> Result<PartPlan, VaultError> {
            let now = self.now();
            let who = self.staging_caller(st, &head.headers, now, caller)?;
            let u = Self::visible(st, id, &who)?;
            if u.expired(now) {
                return Err(VaultError::invalid_data(format!(
                    "Upload session [{id}] has expired"
                )));
            }
            plan_part(u, &head.headers)
        };
        let plan = check(&mut self.lock(), caller)?;

        // Stream the body without keeping it: count and hash only.
        let mut body = body;
        let mut hasher = Md5::new();
        let mut received: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                VaultError::invalid_data(format!("File part could not be read: {e}"))
            })?;
            if let Ok(data) = frame.into_data() {
                received = received.saturating_add(data.len() as u64);
                if received > plan.length {
                    return Err(VaultError::invalid_data(
                        "File part is longer than its Content-Length",
                    ));
                }
                hasher.update(&data);
            }
        }
        if received != plan.length {
            return Err(VaultError::invalid_data(
                "File part is shorter than its Content-Length",
            ));
        }
        let md5 = hex(&hasher.finalize());
        if let Some(expected) = &plan.md5 {
            if *expected != md5 {
                return Err(VaultError::invalid_data(format!(
                    "Content-MD5 [{expected}] does not match the MD5 of the file part [{md5}]"
                )));
            }
        }

        // Re-check: the session may have changed while the body streamed.
        let mut st = self.lock();
        check(&mut st, caller)?;
        let now = self.now();
        let u = st
            .upload_mut(id)
            .ok_or_else(|| VaultError::invalid_data(format!("Invalid upload session ID [{id}]")))?;
        let part = Part {
            size: received,
            md5: md5.clone(),
        };
        let idx = (plan.number - 1) as usize;
        if idx < u.parts.len() {
            u.parts[idx] = part;
        } else {
            u.parts.push(part);
        }
        u.sync_progress();
        u.last_uploaded = now;
        Ok(to_json(&DataJson::new(PartJson {
            size: received,
            part_number: plan.number,
            part_content_md5: &md5,
        })))
    }

    fn commit(
        &self,
        headers: &HeaderMap,
        id: &str,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let now = self.now();
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, now, caller)?;
        let u = Self::visible(&mut st, id, &who)?;
        if u.expired(now) {
            return Err(VaultError::invalid_data(format!(
                "Upload session [{id}] has expired"
            )));
        }
        let uploaded: u64 = u.parts.iter().map(|p| p.size).sum();
        if u.parts.is_empty() || uploaded != u.size {
            return Err(VaultError::invalid_data(format!(
                "Uploaded size [{uploaded}] does not match the declared file size [{}]",
                u.size
            )));
        }
        let last = u.parts.len() - 1;
        if let Some(i) = u.parts[..last].iter().position(|p| p.size < MIN_PART_SIZE) {
            return Err(VaultError::invalid_data(format!(
                "File part [{}] is smaller than the minimum part size of {MIN_PART_SIZE} bytes",
                i + 1
            )));
        }
        st.uploads.retain(|u| u.id != id);
        let job_id = st.next_job_id;
        st.next_job_id += 1;
        Ok(to_json(&DataJson::new(JobJson { job_id })))
    }

    fn abort(
        &self,
        headers: &HeaderMap,
        id: &str,
        caller: &mut Option<Caller>,
    ) -> Result<Bytes, VaultError> {
        let mut st = self.lock();
        let who = self.staging_caller(&mut st, headers, self.now(), caller)?;
        Self::visible(&mut st, id, &who)?;
        st.uploads.retain(|u| u.id != id);
        Ok(to_json(&StatusJson {
            response_status: SUCCESS,
        }))
    }

    // ------------------------------------------------------------ control

    pub(crate) fn insert_session(&self, s: SessionSeed) -> String {
        let id = s.id.unwrap_or_else(random_session_id);
        let upload = Upload {
            parts: synth_parts(&id, s.uploaded, s.uploaded_parts),
            id: id.clone(),
            path: s.path,
            owner: s.owner,
            size: s.size,
            created: clock::truncate_ms(s.created),
            expiration: clock::truncate_ms(s.expiration),
            last_uploaded: clock::truncate_ms(s.last_uploaded),
            uploaded: s.uploaded,
            uploaded_parts: s.uploaded_parts,
            overwrite: false,
        };
        let mut st = self.lock();
        match st.upload_mut(&id) {
            Some(existing) => *existing = upload,
            None => st.uploads.push(upload),
        }
        id
    }

    pub(crate) fn set_progress(
        &self,
        id: &str,
        uploaded: u64,
        uploaded_parts: u32,
        last_uploaded: OffsetDateTime,
    ) -> bool {
        let mut st = self.lock();
        let Some(u) = st.upload_mut(id) else {
            return false;
        };
        u.parts = synth_parts(id, uploaded, uploaded_parts);
        u.uploaded = uploaded;
        u.uploaded_parts = uploaded_parts;
        u.last_uploaded = clock::truncate_ms(last_uploaded);
        true
    }

    pub(crate) fn add_synthetic_part(&self, id: &str, size: u64) -> bool {
        let now = self.now();
        let mut st = self.lock();
        let Some(u) = st.upload_mut(id) else {
            return false;
        };
        let consistent = u.parts.len() == u.uploaded_parts as usize
            && u.parts.iter().map(|p| p.size).sum::<u64>() == u.uploaded;
        let fits = size > 0
            && size <= MAX_PART_SIZE
            && u.uploaded.saturating_add(size) <= u.size
            && u.parts.len() < MAX_PARTS as usize;
        if !consistent || !fits {
            return false;
        }
        let number = u.parts.len() + 1;
        u.parts.push(Part {
            size,
            md5: synth_md5(id, number, size),
        });
        u.sync_progress();
        u.last_uploaded = now;
        true
    }

    /// Backdates `last_uploaded_date` (demo sessions that went quiet).
    pub(crate) fn set_last_uploaded(&self, id: &str, at: OffsetDateTime) -> bool {
        let mut st = self.lock();
        match st.upload_mut(id) {
            Some(u) => {
                u.last_uploaded = clock::truncate_ms(at);
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove_session(&self, id: &str) -> bool {
        let mut st = self.lock();
        let before = st.uploads.len();
        st.uploads.retain(|u| u.id != id);
        st.uploads.len() != before
    }

    pub(crate) fn sessions(&self) -> Vec<SessionView> {
        let now = self.now();
        let mut st = self.lock();
        st.purge(now, &self.spec);
        st.uploads.iter().map(Upload::view).collect()
    }

    pub(crate) fn session(&self, id: &str) -> Option<SessionView> {
        let now = self.now();
        let mut st = self.lock();
        st.purge(now, &self.spec);
        st.upload_mut(id).map(|u| u.view())
    }

    pub(crate) fn invalidate_login_sessions(&self) {
        self.lock().logins.clear();
    }

    pub(crate) fn login_session_ids(&self) -> Vec<String> {
        self.lock().logins.keys().cloned().collect()
    }

    pub(crate) fn unlock_user(&self, username: &str) {
        let mut st = self.lock();
        for u in st
            .users
            .iter_mut()
            .filter(|u| u.spec.username.eq_ignore_ascii_case(username))
        {
            u.locked = false;
            u.failures = 0;
            u.auth_window = None;
        }
    }

    pub(crate) fn request_count(&self, endpoint: Endpoint) -> u64 {
        self.lock().counts.get(&endpoint).copied().unwrap_or(0)
    }

    pub(crate) fn client_ids(&self) -> (Option<String>, u64) {
        let st = self.lock();
        (st.last_client_id.clone(), st.missing_client_id)
    }

    pub(crate) fn set_burst_remaining(&self, remaining: u32) {
        let now = self.now();
        let mut st = self.lock();
        st.burst.start = Some(now);
        st.burst.used = self.spec.burst_limit.saturating_sub(remaining);
    }

    pub(crate) fn set_response_delay(&self, delay: Duration) {
        self.lock().response_delay = delay;
    }
}

/// What a part upload will do, checked before its body is read.
struct PartPlan {
    number: u32,
    length: u64,
    md5: Option<String>,
}

/// Validates a part upload's headers against the session.
fn plan_part(u: &Upload, headers: &HeaderMap) -> Result<PartPlan, VaultError> {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{fffd}").trim())
    };
    let raw = header("x-vaultapi-filepartnumber")
        .ok_or_else(|| VaultError::required("X-VaultAPI-FilePartNumber"))?;
    let number: u32 = raw
        .parse()
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            VaultError::invalid_data(format!(
                "Invalid value [{raw}] for X-VaultAPI-FilePartNumber: must be between 1 and {MAX_PARTS}"
            ))
        })?;
    let existing = u.parts.len();
    if number as usize > existing + 1 {
        return Err(VaultError::invalid_data(format!(
            "File part [{number}] cannot be uploaded before part [{}]",
            existing + 1
        )));
    }
    let length: u64 = match headers.get(CONTENT_LENGTH) {
        Some(v) => {
            let raw = v.to_str().unwrap_or("\u{fffd}").trim();
            raw.parse()
                .map_err(|_| VaultError::invalid_data(format!("Invalid Content-Length [{raw}]")))?
        }
        // Vault requires the length up front; a streamed (chunked) part
        // has none.
        None if headers.contains_key(TRANSFER_ENCODING) => {
            return Err(VaultError::required("Content-Length"))
        }
        // Neither header: by HTTP/1.1 the body is empty.
        None => 0,
    };
    if length == 0 {
        return Err(VaultError::invalid_data("File part is empty"));
    }
    if length > MAX_PART_SIZE {
        return Err(VaultError::invalid_data(format!(
            "File part of {length} bytes exceeds the maximum part size of {MAX_PART_SIZE} bytes"
        )));
    }
    let replaced = u.parts.get(number as usize - 1).map_or(0, |p| p.size);
    let total: u64 = u.parts.iter().map(|p| p.size).sum::<u64>() - replaced + length;
    if total > u.size {
        return Err(VaultError::invalid_data(format!(
            "Uploaded parts ({total} bytes) would exceed the declared file size [{}]",
            u.size
        )));
    }
    let md5 = match header("content-md5") {
        None => None,
        Some(m) if m.len() == 32 && m.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(m.to_ascii_lowercase())
        }
        Some(m) => {
            return Err(VaultError::invalid_data(format!(
                "Invalid Content-MD5 [{m}]: expected 32 hex digits"
            )))
        }
    };
    Ok(PartPlan {
        number,
        length,
        md5,
    })
}

/// Reads a form-encoded body (at most [`MAX_FORM_BODY`] bytes).
async fn read_form(body: Incoming) -> Result<Vec<(String, String)>, VaultError> {
    let bytes = Limited::new(body, MAX_FORM_BODY)
        .collect()
        .await
        .map_err(|_| VaultError::invalid_data("Request body is too large or could not be read"))?
        .to_bytes();
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// First value of `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Absolute staging path with a file name, or `None`.
fn normalize_path(path: &str) -> Option<String> {
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let name_ok = path.rsplit('/').next().is_some_and(|n| !n.is_empty());
    let clean = !path.contains("//")
        && !path.chars().any(char::is_control)
        && !path.split('/').any(|s| s == "." || s == "..");
    (name_ok && clean && path.len() <= 1024).then_some(path)
}

/// Sets a header, skipping values that are not valid header text (fault
/// bodies are caller-provided).
fn put(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Part records consistent with `uploaded` bytes in `n` parts (see
/// `VaultControl::insert_session` for the rules).
fn synth_parts(id: &str, uploaded: u64, n: u32) -> Vec<Part> {
    if n == 0 {
        return Vec::new();
    }
    let count = u64::from(n);
    let (base, rem) = (uploaded / count, uploaded % count);
    let head = (count - 1).saturating_mul(MIN_PART_SIZE);
    let sizes: Vec<u64> = if rem == 0 && (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&base) {
        vec![base; n as usize]
    } else if uploaded > head && uploaded - head <= MAX_PART_SIZE {
        let mut v = vec![MIN_PART_SIZE; n as usize - 1];
        v.push(uploaded - head);
        v
    } else {
        let mut v = vec![base; n as usize - 1];
        v.push(base + rem);
        v
    };
    sizes
        .into_iter()
        .enumerate()
        .map(|(i, size)| Part {
            size,
            md5: synth_md5(id, i + 1, size),
        })
        .collect()
}

/// MD5 standing in for a synthetic part's content.
fn synth_md5(id: &str, number: usize, size: u64) -> String {
    hex(&Md5::digest(format!("{id}:{number}:{size}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn random_hex(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

/// An upload session id shaped like Vault's (seed 000): 78 URL-safe
/// characters and a trailing `--`.
fn random_session_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._";
    let mut rng = rand::rng();
    let mut id: String = (0..78)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    id.push_str("--");
    id
}

/// Unique execution id (UUID-shaped).
fn execution_id() -> String {
    let h = random_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(is_version("v25.2"));
        assert!(is_version("v9.10"));
        assert!(!is_version("v25"));
        assert!(!is_version("25.2"));
        assert!(!is_version("v25.x"));
        assert!(!is_version("v.2"));
    }

    #[test]
    fn routes() {
        let r = |m: Method, p: &str| parse_route(&m, p);
        assert_eq!(
            r(Method::GET, "/api/"),
            Ok(Route {
                version: None,
                op: Op::ApiVersions
            })
        );
        assert_eq!(r(Method::POST, "/api"), Err(RouteError::Method));
        assert_eq!(
            r(
                Method::PUT,
                "/api/v25.2/services/file_staging/upload/ab.c--"
            ),
            Ok(Route {
                version: Some("v25.2".into()),
                op: Op::Upload("ab.c--".into())
            })
        );
        assert_eq!(
            r(
                Method::GET,
                "/api/v1.0/services/file_staging/upload/x/parts/"
            ),
            Ok(Route {
                version: Some("v1.0".into()),
                op: Op::Parts("x".into())
            })
        );
        assert_eq!(
            r(Method::PATCH, "/api/v25.2/services/file_staging/upload"),
            Err(RouteError::Method)
        );
        assert_eq!(r(Method::GET, "/api/v25.2/auth"), Err(RouteError::Method));
        assert_eq!(
            r(Method::GET, "/api/latest/auth"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            r(
                Method::GET,
                "/api/v25.2/services/file_staging/upload//parts"
            ),
            Err(RouteError::NotFound)
        );
        assert_eq!(r(Method::GET, "/apis"), Err(RouteError::NotFound));
        assert_eq!(r(Method::GET, ""), Err(RouteError::NotFound));
    }

    #[test]
    fn synthesized_parts() {
        let sizes = |u, n| -> Vec<u64> { synth_parts("s", u, n).iter().map(|p| p.size).collect() };
        assert_eq!(sizes(10_485_760, 2), vec![MIN_PART_SIZE, MIN_PART_SIZE]);
        assert_eq!(sizes(1_273_267, 1), vec![1_273_267]);
        assert_eq!(sizes(0, 0), Vec::<u64>::new());
        assert_eq!(sizes(100 * 1024 * 1024, 4), vec![25 * 1024 * 1024; 4]);
        assert_eq!(
            sizes(12 * 1024 * 1024 + 1, 2),
            vec![MIN_PART_SIZE, 7 * 1024 * 1024 + 1]
        );
        assert_eq!(sizes(10, 3), vec![3, 3, 4]);
        assert_eq!(sizes(2, 3), vec![0, 0, 2]);
        for (u, n) in [(40u64 << 30, 2000u32), (7, 1), (123_456_789, 7)] {
            let s = sizes(u, n);
            assert_eq!(s.len(), n as usize);
            assert_eq!(s.iter().sum::<u64>(), u);
        }
    }

    #[tokio::test]
    async fn oversized_is_exact() {
        for n in [0, 5, 41, 42, 43, 1000] {
            for chunked in [false, true] {
                let b = oversized_body(n, chunked)
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes();
                assert_eq!(b.len(), n);
            }
        }
        let b = oversized_body(1000, false)
            .collect()
            .await
            .unwrap()
            .to_bytes();
        assert!(serde_json::from_slice::<serde_json::Value>(&b).is_ok());
    }

    #[test]
    fn paths() {
        assert_eq!(normalize_path("a/b.txt"), Some("/a/b.txt".into()));
        assert_eq!(normalize_path("/u1/b.txt"), Some("/u1/b.txt".into()));
        assert_eq!(normalize_path("/u1/"), None);
        assert_eq!(normalize_path("/u1//x"), None);
        assert_eq!(normalize_path("/../x"), None);
    }

    #[test]
    fn failure_json_shape() {
        let e = VaultError::auth(ErrorType::UserLockedOut, "m");
        assert_eq!(
            e.body(),
            Bytes::from_static(
                br#"{"responseStatus":"FAILURE","errors":[{"type":"USER_LOCKED_OUT","message":"m"}],"errorType":"USER_LOCKED_OUT"}"#
            )
        );
    }
}
