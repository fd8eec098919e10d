//! A simulator of deepset Cloud (deepset AI Platform) upload sessions,
//! served by the same server as the Vault simulator, under `/deepset`.
//!
//! # Routes and auth
//!
//! - API: `/deepset/api/v1/workspaces/{workspace_name}/upload_sessions[...]`
//!   (a trailing `/` is accepted).
//! - Object storage: `POST /deepset/storage/{bucket}`, one bucket per
//!   workspace (`deepset-sim-{workspace}`); the URL and form come from
//!   Create Upload Session.
//!
//! API requests carry `Authorization: Bearer {api_key}`; keys map to users
//! ([`DeepsetUser`]), a user may be in several workspaces. Checks run in
//! this order: unknown path → 404 `{"detail":"Not Found"}`, wrong method →
//! 405 `{"detail":"Method Not Allowed"}`; injected faults (they act like a
//! gateway, before the application); missing, non-Bearer or unknown key →
//! 401 `{"detail":"Not authenticated"}` with `WWW-Authenticate: Bearer`;
//! unknown workspace → 404 `{"detail":"Workspace not found"}`; a user who is
//! not a member → 403 `{"detail":"..."}`; then request validation → 422
//! with FastAPI's `{"detail":[{type, loc, msg, input, ctx?}]}` (pydantic v2
//! error types and messages, every bad parameter reported); then the
//! endpoint's own answers. Every answer is `application/json` (204s have no
//! body); storage errors are S3's XML.
//!
//! # Sessions
//!
//! A session has `session_id` (UUID v4), `created_by {user_id, given_name,
//! family_name}` (empty names for a user id that is no member),
//! `created_at`, `expires_at` (nullable), `status` and `write_mode`.
//! `status` and `write_mode` are plain strings: the API sends `OPEN`,
//! `CLOSED`, `EXPIRED` and `KEEP`, `OVERWRITE`, `FAIL`, `TEMPORARY`, and
//! tests may store anything (e.g. `ARCHIVED`) to check that clients cope
//! with values added later. Timestamps are ISO 8601 UTC with microseconds,
//! `2025-03-14T09:26:53.123456Z`, or `...123456+00:00` in a workspace with
//! [`legacy_timestamps`](DeepsetSpec::legacy_timestamps).
//!
//! Time is the simulator's clock ([`Simulator::advance`](super::Simulator::advance)
//! moves it). State changes with time are applied lazily, before every
//! request and control call, with one `now`:
//! - an `OPEN` session whose `expires_at` is ≤ now becomes `EXPIRED`;
//!   `CLOSED` stays `CLOSED` forever, its `expires_at` unchanged;
//! - a file whose ingestion is due becomes `FINISHED` or `FAILED`;
//! - with [`purge_ended_after`](DeepsetSpec::purge_ended_after) set (the
//!   demo sets it), a session that ended (closed, or expired) that long
//!   ago is forgotten; past [`max_sessions`](DeepsetSpec::max_sessions) the
//!   oldest ended sessions are forgotten (open ones never), and creating a
//!   session in a workspace full of open ones gets 406. A session holds at
//!   most [`MAX_FILES_PER_SESSION`] files. So clients with the published
//!   demo key cannot grow the simulator without bound.
//!
//! # Get Upload Sessions (`GET .../upload_sessions`, seed 004)
//!
//! Query (all optional): `is_expired`, `limit` (default 10, 1..=100),
//! `page_number` (≥ 1), `after` / `before` (UUIDs), `field` (default
//! `created_at`; also `expires_at`, `status`, `write_mode`, `name`,
//! `file_count`, `ingestion_status_reason`), `order` (`ASC`/`DESC`, default
//! `DESC`).
//!
//! - Filter: `is_expired=true` ⇔ `expires_at` is non-null and ≤ now;
//!   `false` ⇔ null or > now; absent ⇔ every session. (A `CLOSED` session
//!   past its `expires_at` counts as expired.)
//! - Order: by (`field`, `session_id`), both in `order`'s direction, so it is
//!   total. Strings compare bytewise; `file_count` is the number of files;
//!   a null `expires_at` sorts after every time in `ASC` (before in `DESC`),
//!   like PostgreSQL's default. Sessions have no name or ingestion status
//!   reason, so `name` and `ingestion_status_reason` (accepted because the
//!   API's sort enum lists them) order by `session_id` alone.
//! - `page_number=n`: the n-th page of `limit` matching entries (page 1 if
//!   no page number and no cursor).
//! - `after=X`: the first `limit` matching entries strictly after X's
//!   position in the order. X's position comes from X's *current* sort key,
//!   whether or not X still matches the filter, so a cursor stays valid
//!   when X expires or closes between pages. X must be a session of the
//!   workspace (else 422 `value_error`).
//! - `before=X`: the last `limit` matching entries strictly before X (the
//!   page nearest to X), still in the requested order.
//! - `page_number` with a cursor, or `after` with `before` → 422
//!   `value_error`; a malformed UUID → 422 `uuid_parsing`.
//! - Response `{data, has_more, total}`: `total` = entries matching the
//!   filter (all pages); `has_more` = matching entries remain beyond this
//!   page in the direction of travel (after it for page numbers and
//!   `after`, before it for `before`).
//!
//! # Create Upload Session (`POST .../upload_sessions`)
//!
//! Body (JSON, all fields optional, an empty body counts as `{}`):
//! `expires_in_seconds` (1..=86400; default [`DeepsetSpec::session_ttl`]),
//! `write_mode` (one of the four modes; default `KEEP`),
//! `parallel_processing_enabled` (bool). Invalid → 422. A user with
//! [`max_open_per_user`](DeepsetSpec::max_open_per_user) `OPEN` sessions
//! gets 406 `{"detail":"..."}`. Success → 201 `{session_id,
//! documentation_url, expires_at, aws_prefixed_request_config: {url,
//! fields}}` with `url` = `http://{Host}/deepset/storage/{bucket}` and
//! `fields` = `key` (`{workspace}/{session_id}/${filename}`),
//! `x-amz-algorithm`, `x-amz-credential`, `x-amz-date`, `policy` (base64
//! JSON; `expiration` = the session's `expires_at`, to the second) and
//! `x-amz-signature` (a keyed hash only the simulator can make, not AWS
//! crypto).
//!
//! # Object storage (`POST /deepset/storage/{bucket}`)
//!
//! `multipart/form-data` with the form's fields and then a `file` part, as
//! S3 takes a browser POST (field names are case-insensitive, fields after
//! the file are ignored, `${filename}` in `key` becomes the file part's
//! file name). Success → 204; the file joins the session as `PENDING`
//! (name and size only; a second upload of the same name replaces the
//! size). A wrong or missing signature, an expired policy, a failed policy
//! condition, an unlisted field (other than `x-ignore-*`), or a session
//! that is not `OPEN` (or no longer exists) → 403 `<Error><Code>
//! AccessDenied</Code><Message>...</Message>...</Error>`. No file part or
//! no key → 400 `InvalidArgument`; a body over
//! [`MAX_UPLOAD_BYTES`] → 400 `EntityTooLarge`; not multipart → 412.
//!
//! # Other endpoints
//!
//! - `GET .../upload_sessions/{id}` → `{session_id, expires_at,
//!   documentation_url, ingestion_status: {failed_files, finished_files}}`.
//! - `GET .../upload_sessions/{id}/files`: query `ingestion_status`
//!   (`PENDING`/`FAILED`/`FINISHED`), `limit` (default 10, 1..=100),
//!   `page_number` or `after`/`before` (a `file_ingestion_id` of the
//!   session) → `{data: [{name, ingestion_status, file_ingestion_id,
//!   ingestion_status_reason}], has_more, total}`, files in upload order,
//!   with the same paging rules as sessions (`limit=1` is a cheap count).
//! - `PUT .../upload_sessions/{id}` with `{"status":"CLOSED"}` → 204; a
//!   session that is not `OPEN` → 409 `{"detail":"..."}`; any other body →
//!   422.
//! - A session id that is no UUID → 422 (`uuid_parsing`, `loc` `["path",
//!   "session_id"]`); an unknown one → 404 `{"detail":"Session not
//!   found"}`. Validation (422) comes before the lookup (404).
//!
//! # Ingestion
//!
//! Closing (over HTTP or [`DeepsetControl::close_session`]) schedules each
//! `PENDING` file for [`ingestion_delay`](DeepsetSpec::ingestion_delay)
//! later; its outcome is [`ingestion_outcome`]: an extension not in
//! [`SUPPORTED_EXTENSIONS`] → `FAILED` "Unsupported file type"; size 0 →
//! `FAILED` "File is empty"; a name containing "corrupt" (any case) →
//! `FAILED` "Failed to parse file"; else `FINISHED` (reason null). Files of
//! `OPEN`/`EXPIRED` sessions stay `PENDING` for good, as do `PENDING` files
//! seeded into a `CLOSED` session, until [`DeepsetControl::ingest_now`].
//!
//! No rate limits apply unless injected ([`DeepsetControl::inject`],
//! e.g. [`FaultKind::TooManyRequests`]).

mod demo;
mod query;
mod storage;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use rand::Rng;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::clock::{self, SimClock};
use super::faults::{self, lock, FaultKind, FaultRule, FaultSet, FaultTarget};
use super::http::{Aborted, HttpResponse, InFlight, ShutdownSignal, SimBody};
use query::{Order, Params, Selection, SortField};
use storage::S3Error;
use wire::{format_ts, truncate_us, ApiError, Problem, Reply};

pub(crate) use demo::run as run_demo;
pub use storage::MAX_UPLOAD_BYTES;

/// Path prefix of everything deepset.
pub(crate) const MOUNT: &str = "/deepset";
/// API key of [`DeepsetUser::demo`].
pub const DEMO_API_KEY: &str = "demo-api-key";
/// User id of [`DeepsetUser::demo`].
pub const DEMO_USER_ID: &str = "6c3f7e7a-2b1d-4d8e-9f4a-1a2b3c4d5e6f";
/// `documentation_url` of session answers.
pub const DOCUMENTATION_URL: &str = "https://docs.cloud.deepset.ai/docs/upload-files";
/// File extensions ingestion accepts (lower case, compared
/// case-insensitively).
pub const SUPPORTED_EXTENSIONS: [&str; 9] = [
    "txt", "pdf", "md", "docx", "html", "csv", "json", "pptx", "xlsx",
];
/// Largest JSON request body.
const MAX_JSON_BODY: usize = 64 * 1024;

const OPEN: &str = "OPEN";
const CLOSED: &str = "CLOSED";
const EXPIRED: &str = "EXPIRED";
const PENDING: &str = "PENDING";
const FINISHED: &str = "FINISHED";
const FAILED: &str = "FAILED";

/// The deepset calls the simulator serves, for request counting and for
/// targeting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeepsetEndpoint {
    /// `GET .../upload_sessions`
    ListSessions,
    /// `POST .../upload_sessions`
    CreateSession,
    /// `GET .../upload_sessions/{id}`
    SessionStatus,
    /// `GET .../upload_sessions/{id}/files`
    ListFiles,
    /// `PUT .../upload_sessions/{id}`
    CloseSession,
    /// `POST /deepset/storage/{bucket}`
    StorageUpload,
}

impl DeepsetEndpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [DeepsetEndpoint; 6] = [
        DeepsetEndpoint::ListSessions,
        DeepsetEndpoint::CreateSession,
        DeepsetEndpoint::SessionStatus,
        DeepsetEndpoint::ListFiles,
        DeepsetEndpoint::CloseSession,
        DeepsetEndpoint::StorageUpload,
    ];

    /// The endpoint's name in the admin API, e.g. `list_sessions`.
    pub fn name(self) -> &'static str {
        match self {
            DeepsetEndpoint::ListSessions => "list_sessions",
            DeepsetEndpoint::CreateSession => "create_session",
            DeepsetEndpoint::SessionStatus => "session_status",
            DeepsetEndpoint::ListFiles => "list_files",
            DeepsetEndpoint::CloseSession => "close_session",
            DeepsetEndpoint::StorageUpload => "storage_upload",
        }
    }
}

impl FaultTarget for DeepsetEndpoint {
    const ALL: &'static [Self] = &DeepsetEndpoint::ALL;

    fn name(self) -> &'static str {
        DeepsetEndpoint::name(self)
    }
}

/// One simulated deepset workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepsetSpec {
    /// `{workspace_name}` of the paths; letters, digits, `-`, `_`, `.`.
    pub workspace: String,
    /// Members (who may call the workspace's API).
    pub users: Vec<DeepsetUser>,
    /// Lifetime of a session created without `expires_in_seconds`.
    pub session_ttl: Duration,
    /// Most `OPEN` sessions one user may have (406 past it).
    pub max_open_per_user: usize,
    /// How long after closing a file's ingestion ends (zero: at once).
    pub ingestion_delay: Duration,
    /// Timestamps end in `+00:00` instead of `Z` (older responses).
    pub legacy_timestamps: bool,
    /// Sessions that ended (closed, expired) are forgotten this long after
    /// they ended; `None` keeps them (tests with fixed dates). The demo
    /// sets it: anyone with the published demo key can create sessions.
    pub purge_ended_after: Option<Duration>,
    /// Most sessions the workspace keeps: past it the oldest ended ones
    /// are forgotten, and creating one more while every kept session is
    /// `OPEN` gets 406.
    pub max_sessions: usize,
}

/// Most files a session keeps (an upload of one more name gets 400
/// `TooManyFiles`), so that uploads cannot grow the simulator without bound.
pub const MAX_FILES_PER_SESSION: usize = 10_000;

impl DeepsetSpec {
    /// A workspace with the documented defaults (24 h sessions, 10 open per
    /// user, 3 s ingestion, `Z` timestamps) and [`DeepsetUser::demo`].
    pub fn new(workspace: &str) -> Self {
        Self {
            workspace: workspace.to_owned(),
            users: vec![DeepsetUser::demo()],
            session_ttl: Duration::from_secs(24 * 3600),
            max_open_per_user: 10,
            ingestion_delay: Duration::from_secs(3),
            legacy_timestamps: false,
            purge_ended_after: None,
            max_sessions: 10_000,
        }
    }
}

/// A deepset user and their API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepsetUser {
    /// UUID (`created_by.user_id`).
    pub user_id: String,
    /// `created_by.given_name`.
    pub given_name: String,
    /// `created_by.family_name`.
    pub family_name: String,
    /// `Authorization: Bearer {api_key}`.
    pub api_key: String,
}

impl DeepsetUser {
    /// "Dana Demo", [`DEMO_USER_ID`], API key [`DEMO_API_KEY`].
    pub fn demo() -> Self {
        Self::new(DEMO_USER_ID, "Dana", "Demo", DEMO_API_KEY)
    }

    /// A user.
    pub fn new(user_id: &str, given_name: &str, family_name: &str, api_key: &str) -> Self {
        Self {
            user_id: user_id.to_owned(),
            given_name: given_name.to_owned(),
            family_name: family_name.to_owned(),
            api_key: api_key.to_owned(),
        }
    }
}

/// A session to place directly into a workspace
/// ([`DeepsetControl::insert_session`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepsetSessionSeed {
    /// Session id (a UUID, stored in canonical lower-case form); `None` = a
    /// random one.
    pub id: Option<String>,
    /// Creator (`created_by.user_id`).
    pub user_id: String,
    /// `created_at` (kept to the microsecond).
    pub created_at: OffsetDateTime,
    /// `expires_at`.
    pub expires_at: Option<OffsetDateTime>,
    /// `status`, any string.
    pub status: String,
    /// `write_mode`, any string.
    pub write_mode: String,
    /// Files, in upload order.
    pub files: Vec<FileSeed>,
}

impl DeepsetSessionSeed {
    /// Created `now`, expiring 24 h later, `OPEN`, `KEEP`, no files.
    pub fn open(user_id: &str, now: OffsetDateTime) -> Self {
        Self {
            id: None,
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: Some(clock::add(now, Duration::from_secs(24 * 3600))),
            status: OPEN.to_owned(),
            write_mode: "KEEP".to_owned(),
            files: Vec::new(),
        }
    }
}

/// A file of a seeded session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSeed {
    /// Object name below the session's prefix.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `PENDING`, `FINISHED`, `FAILED` (or anything).
    pub status: String,
    /// `ingestion_status_reason`.
    pub reason: Option<String>,
}

impl FileSeed {
    /// A file waiting for ingestion.
    pub fn pending(name: &str, size: u64) -> Self {
        Self {
            name: name.to_owned(),
            size,
            status: PENDING.to_owned(),
            reason: None,
        }
    }

    /// A file already ingested, with the outcome [`ingestion_outcome`]
    /// gives it.
    pub fn ingested(name: &str, size: u64) -> Self {
        let (status, reason) = ingestion_outcome(name, size);
        Self {
            name: name.to_owned(),
            size,
            status: status.to_owned(),
            reason: reason.map(str::to_owned),
        }
    }
}

/// Snapshot of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepsetSessionView {
    /// `session_id`.
    pub id: String,
    /// `created_by.user_id`.
    pub user_id: String,
    /// `status`.
    pub status: String,
    /// `created_at`.
    pub created_at: OffsetDateTime,
    /// `expires_at`.
    pub expires_at: Option<OffsetDateTime>,
    /// `write_mode`.
    pub write_mode: String,
    /// Files in upload order.
    pub files: Vec<DeepsetFileView>,
}

/// Snapshot of a session's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepsetFileView {
    /// `file_ingestion_id`.
    pub file_ingestion_id: String,
    /// `name`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// `ingestion_status`.
    pub status: String,
    /// `ingestion_status_reason`.
    pub reason: Option<String>,
}

/// The outcome of ingesting a file (deterministic): `("FAILED", reason)`
/// for an extension not in [`SUPPORTED_EXTENSIONS`] ("Unsupported file
/// type"), then for size 0 ("File is empty"), then for a name containing
/// "corrupt" in any case ("Failed to parse file"); else `("FINISHED",
/// None)`.
pub fn ingestion_outcome(name: &str, size: u64) -> (&'static str, Option<&'static str>) {
    let base = name.rsplit('/').next().unwrap_or(name);
    let ext = base
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !SUPPORTED_EXTENSIONS.contains(&ext.as_str()) {
        (FAILED, Some("Unsupported file type"))
    } else if size == 0 {
        (FAILED, Some("File is empty"))
    } else if name.to_ascii_lowercase().contains("corrupt") {
        (FAILED, Some("Failed to parse file"))
    } else {
        (FINISHED, None)
    }
}

// -------------------------------------------------------------------- state

#[derive(Debug, Clone)]
struct File {
    id: String,
    name: String,
    size: u64,
    status: String,
    reason: Option<String>,
    /// When ingestion ends (set by closing).
    ingest_at: Option<OffsetDateTime>,
}

impl File {
    fn ingest(&mut self) {
        let (status, reason) = ingestion_outcome(&self.name, self.size);
        self.status = status.to_owned();
        self.reason = reason.map(str::to_owned);
        self.ingest_at = None;
    }

    fn view(&self) -> DeepsetFileView {
        DeepsetFileView {
            file_ingestion_id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            status: self.status.clone(),
            reason: self.reason.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    user_id: String,
    created_at: OffsetDateTime,
    expires_at: Option<OffsetDateTime>,
    status: String,
    write_mode: String,
    files: Vec<File>,
    /// When it was closed (over the API or by control).
    closed_at: Option<OffsetDateTime>,
}

impl Session {
    /// When it stopped being `OPEN`, if it did: closed, or its expiry
    /// (its creation for a seeded session without either).
    fn ended_at(&self) -> Option<OffsetDateTime> {
        (self.status != OPEN).then(|| {
            self.closed_at
                .or(self.expires_at)
                .unwrap_or(self.created_at)
        })
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// Closes an `OPEN` session and schedules its pending files.
    fn close(&mut self, at: OffsetDateTime) -> bool {
        if self.status != OPEN {
            return false;
        }
        self.status = CLOSED.to_owned();
        self.closed_at = Some(at);
        for f in self.files.iter_mut().filter(|f| f.status == PENDING) {
            f.ingest_at = Some(at);
        }
        true
    }

    /// Adds a pending file; a file of the same name is replaced in place
    /// (the storage object is overwritten). `false` (nothing stored) for a
    /// new name past [`MAX_FILES_PER_SESSION`].
    fn put_file(&mut self, name: String, size: u64) -> bool {
        let full = self.files.len() >= MAX_FILES_PER_SESSION;
        match self.files.iter_mut().find(|f| f.name == name) {
            Some(f) => {
                f.size = size;
                f.status = PENDING.to_owned();
                f.reason = None;
                f.ingest_at = None;
            }
            None if full => return false,
            None => self.files.push(File {
                id: new_id(),
                name,
                size,
                status: PENDING.to_owned(),
                reason: None,
                ingest_at: None,
            }),
        }
        true
    }

    fn view(&self) -> DeepsetSessionView {
        DeepsetSessionView {
            id: self.id.clone(),
            user_id: self.user_id.clone(),
            status: self.status.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            write_mode: self.write_mode.clone(),
            files: self.files.iter().map(File::view).collect(),
        }
    }
}

type HookFn = Box<dyn FnOnce(&DeepsetControl) + Send>;

/// A control call to run after a given list request.
struct Hook {
    /// Ordinal of that list request.
    at: u64,
    f: HookFn,
}

#[derive(Default)]
struct State {
    /// In creation order.
    sessions: Vec<Session>,
    counts: HashMap<DeepsetEndpoint, u64>,
    hooks: Vec<Hook>,
}

impl State {
    /// Applies what time did since the last call (see the module docs).
    fn settle(&mut self, now: OffsetDateTime) {
        for s in &mut self.sessions {
            if s.status == OPEN && s.expired(now) {
                s.status = EXPIRED.to_owned();
            }
            for f in s.files.iter_mut() {
                if f.status == PENDING && f.ingest_at.is_some_and(|t| t <= now) {
                    f.ingest();
                }
            }
        }
    }

    /// Forgets what the spec says not to keep (see
    /// [`DeepsetSpec::purge_ended_after`], [`DeepsetSpec::max_sessions`]).
    fn purge(&mut self, now: OffsetDateTime, spec: &DeepsetSpec) {
        if let Some(after) = spec.purge_ended_after {
            self.sessions
                .retain(|s| s.ended_at().is_none_or(|t| now <= clock::add(t, after)));
        }
        self.keep_at_most(spec.max_sessions);
    }

    /// Forgets the oldest ended sessions until at most `max` are kept (or
    /// only open ones are left).
    fn keep_at_most(&mut self, max: usize) {
        let mut excess = self.sessions.len().saturating_sub(max);
        if excess > 0 {
            // In creation order: the oldest ended sessions go first.
            self.sessions.retain(|s| {
                if excess > 0 && s.status != OPEN {
                    excess -= 1;
                    return false;
                }
                true
            });
        }
    }

    fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.iter().find(|s| s.id == id)
    }

    fn session_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.sessions.iter_mut().find(|s| s.id == id)
    }
}

/// A UUID's canonical form; other strings unchanged.
fn canonical(id: &str) -> String {
    Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .unwrap_or_else(|_| id.to_owned())
}

fn new_id() -> String {
    Uuid::new_v4().hyphenated().to_string()
}

// ------------------------------------------------------------------ routing

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    List,
    Create,
    Status(String),
    Files(String),
    Close(String),
}

impl Op {
    fn endpoint(&self) -> DeepsetEndpoint {
        match self {
            Self::List => DeepsetEndpoint::ListSessions,
            Self::Create => DeepsetEndpoint::CreateSession,
            Self::Status(_) => DeepsetEndpoint::SessionStatus,
            Self::Files(_) => DeepsetEndpoint::ListFiles,
            Self::Close(_) => DeepsetEndpoint::CloseSession,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route<'a> {
    Api { workspace: &'a str, op: Op },
    Storage { bucket: &'a str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RouteError {
    NotFound { storage: bool },
    Method { storage: bool },
}

impl RouteError {
    fn reply(self) -> Reply {
        match self {
            Self::NotFound { storage: false } => Reply::detail(StatusCode::NOT_FOUND, "Not Found"),
            Self::Method { storage: false } => {
                Reply::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            }
            Self::NotFound { storage: true } => S3Error::not_found_bucket("").reply(),
            Self::Method { storage: true } => S3Error::method_not_allowed().reply(),
        }
    }
}

/// Parses the path after [`MOUNT`].
fn parse_route<'a>(method: &Method, rest: &'a str) -> Result<Route<'a>, RouteError> {
    let path = rest.strip_suffix('/').unwrap_or(rest);
    let segs: Vec<&str> = path.split('/').collect();
    let api = |op: Option<Op>| op.ok_or(RouteError::Method { storage: false });
    let get_put = |id: &str, m: &Method| match *m {
        Method::GET => Some(Op::Status(id.to_owned())),
        Method::PUT => Some(Op::Close(id.to_owned())),
        _ => None,
    };
    match segs.as_slice() {
        ["", "api", "v1", "workspaces", ws, "upload_sessions"] if !ws.is_empty() => {
            let op = match *method {
                Method::GET => Some(Op::List),
                Method::POST => Some(Op::Create),
                _ => None,
            };
            Ok(Route::Api {
                workspace: ws,
                op: api(op)?,
            })
        }
        ["", "api", "v1", "workspaces", ws, "upload_sessions", id]
            if !ws.is_empty() && !id.is_empty() =>
        {
            Ok(Route::Api {
                workspace: ws,
                op: api(get_put(id, method))?,
            })
        }
        ["", "api", "v1", "workspaces", ws, "upload_sessions", id, "files"]
            if !ws.is_empty() && !id.is_empty() =>
        {
            let op = (*method == Method::GET).then(|| Op::Files((*id).to_owned()));
            Ok(Route::Api {
                workspace: ws,
                op: api(op)?,
            })
        }
        ["", "storage", bucket] if !bucket.is_empty() => {
            if *method == Method::POST {
                Ok(Route::Storage { bucket })
            } else {
                Err(RouteError::Method { storage: true })
            }
        }
        ["", "storage", ..] => Err(RouteError::NotFound { storage: true }),
        _ => Err(RouteError::NotFound { storage: false }),
    }
}

/// Per-request context from the HTTP layer.
pub(crate) struct Ctx<'a> {
    /// `Host` header (or the listen address), for absolute URLs.
    pub(crate) host: &'a str,
    pub(crate) shutdown: &'a ShutdownSignal,
}

/// Every simulated workspace, and the API keys of all their users.
#[derive(Debug)]
pub(crate) struct Deepset {
    workspaces: Vec<Arc<Workspace>>,
    /// API key → user id.
    keys: HashMap<String, String>,
}

impl Deepset {
    pub(crate) fn new(specs: Vec<DeepsetSpec>, clock: &Arc<SimClock>) -> Self {
        let keys = specs
            .iter()
            .flat_map(|s| s.users.iter())
            .map(|u| (u.api_key.clone(), u.user_id.clone()))
            .collect();
        let workspaces = specs
            .into_iter()
            .map(|spec| Arc::new(Workspace::new(spec, Arc::clone(clock))))
            .collect();
        Self { workspaces, keys }
    }

    pub(crate) fn workspaces(&self) -> &[Arc<Workspace>] {
        &self.workspaces
    }

    pub(crate) fn control(&self, workspace: &str) -> Option<DeepsetControl> {
        self.workspaces
            .iter()
            .find(|w| w.spec.workspace == workspace)
            .map(|w| DeepsetControl {
                inner: Arc::clone(w),
            })
    }

    /// The user id of the request's API key.
    fn authenticate(&self, headers: &HeaderMap) -> Option<String> {
        let raw = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
        let (scheme, key) = raw.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        self.keys.get(key.trim()).cloned()
    }

    /// Serves one request whose path, after [`MOUNT`], is `rest`.
    pub(crate) async fn serve(
        &self,
        req: Request<Incoming>,
        rest: &str,
        ctx: &Ctx<'_>,
    ) -> Result<HttpResponse, Aborted> {
        let route = match parse_route(req.method(), rest) {
            Ok(r) => r,
            Err(e) => return Ok(e.reply().into_response()),
        };
        match route {
            Route::Storage { bucket } => {
                match self.workspaces.iter().find(|w| w.bucket == bucket) {
                    Some(ws) => {
                        let echo = ws.echo_if_reflected(DeepsetEndpoint::StorageUpload, &req);
                        let work = ws.storage_upload(req);
                        ws.guarded(DeepsetEndpoint::StorageUpload, ctx, echo, work)
                            .await
                    }
                    None => Ok(S3Error::not_found_bucket(bucket).reply().into_response()),
                }
            }
            Route::Api { workspace, op } => {
                let user = self.authenticate(req.headers());
                match self
                    .workspaces
                    .iter()
                    .find(|w| w.spec.workspace == workspace)
                {
                    Some(ws) => {
                        let endpoint = op.endpoint();
                        let echo = ws.echo_if_reflected(endpoint, &req);
                        let work = ws.api(op, user, req, ctx.host);
                        ws.guarded(endpoint, ctx, echo, work).await
                    }
                    None => {
                        let err = match user {
                            None => ApiError::Unauthenticated,
                            Some(_) => ApiError::NotFound("Workspace not found".to_owned()),
                        };
                        Ok(err.reply().into_response())
                    }
                }
            }
        }
    }
}

/// A fault's answer, or `work`'s. `echo` is the request's reflection when
/// the next fault was to reflect it.
async fn apply_fault(
    fault: Option<FaultKind>,
    work: impl Future<Output = Reply>,
    shutdown: &ShutdownSignal,
    echo: Option<String>,
) -> Result<Reply, Aborted> {
    let raw = |status: StatusCode, ct: &str, body: Bytes| Ok(Reply::raw(status, ct, body));
    match fault {
        None | Some(FaultKind::WrongVersionTrap) => Ok(work.await),
        Some(FaultKind::Hang) => {
            shutdown.wait().await;
            Err(Aborted)
        }
        Some(FaultKind::Reset) => Err(Aborted),
        Some(FaultKind::Delay(d)) => {
            shutdown.sleep(d).await;
            Ok(work.await)
        }
        Some(FaultKind::TruncatedJson) => {
            let mut reply = work.await;
            reply.body = reply.body.slice(..reply.body.len() / 2);
            Ok(reply)
        }
        Some(FaultKind::HttpStatus {
            status,
            content_type,
            body,
        }) => raw(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &content_type,
            Bytes::from(body),
        ),
        Some(FaultKind::HtmlSignIn) => raw(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(SIGN_IN_PAGE.as_bytes()),
        ),
        Some(FaultKind::MalformedJson) => raw(
            StatusCode::OK,
            wire::JSON,
            Bytes::from_static(b"{\"data\":[{\"session_id\":,}"),
        ),
        Some(FaultKind::Oversized { bytes }) => Ok(Reply::generated(oversized_body(bytes, false))),
        Some(FaultKind::OversizedChunked { bytes }) => {
            Ok(Reply::generated(oversized_body(bytes, true)))
        }
        Some(FaultKind::UnknownFields) => {
            let mut reply = work.await;
            if let Some(body) = faults::with_unknown_fields(&reply.body) {
                reply.body = body;
            }
            Ok(reply)
        }
        Some(FaultKind::OddRecords { records }) => {
            let mut reply = work.await;
            if let Some(body) = faults::with_odd_records(&reply.body, &records) {
                reply.body = body;
            }
            Ok(reply)
        }
        Some(FaultKind::VaultFailure { message, .. }) => {
            Ok(Reply::detail(StatusCode::INTERNAL_SERVER_ERROR, &message))
        }
        Some(FaultKind::ReflectRequest { status }) => Ok(Reply::detail(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &format!("Invalid token: {}", echo.unwrap_or_default()),
        )),
        Some(FaultKind::TooManyRequests { retry_after }) => Ok(Reply::detail(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests",
        )
        .with_header("retry-after", retry_after.to_string())),
    }
}

const SIGN_IN_PAGE: &str = "<!DOCTYPE html>\n<html><head><title>Sign in - deepset</title></head>\n<body><form method=\"post\" action=\"/login\"><h1>Sign in to deepset</h1>\n<label>Email <input name=\"email\"></label>\n<label>Password <input name=\"password\" type=\"password\"></label>\n<button type=\"submit\">Continue</button></form></body></html>\n";

/// Valid JSON of exactly `bytes` bytes when that is at least the
/// envelope's size, else a prefix of it; generated while it is sent.
fn oversized_body(bytes: usize, chunked: bool) -> SimBody {
    const HEAD: &str = r#"{"data":[],"has_more":false,"total":0,"padding":""#;
    const TAIL: &str = r#""}"#;
    SimBody::padded(HEAD, TAIL, bytes, chunked)
}

// ---------------------------------------------------------------- wire JSON

#[derive(Serialize)]
struct CreatedBy<'a> {
    user_id: &'a str,
    given_name: &'a str,
    family_name: &'a str,
}

#[derive(Serialize)]
struct SessionJson<'a> {
    session_id: &'a str,
    created_by: CreatedBy<'a>,
    created_at: String,
    expires_at: Option<String>,
    status: &'a str,
    write_mode: &'a str,
}

#[derive(Serialize)]
struct PageJson<T> {
    data: Vec<T>,
    has_more: bool,
    total: usize,
}

#[derive(Serialize)]
struct RequestConfigJson {
    url: String,
    fields: storage::Fields,
}

#[derive(Serialize)]
struct CreatedJson<'a> {
    session_id: &'a str,
    documentation_url: &'static str,
    expires_at: Option<String>,
    aws_prefixed_request_config: RequestConfigJson,
}

#[derive(Serialize)]
struct IngestionJson {
    failed_files: usize,
    finished_files: usize,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    session_id: &'a str,
    expires_at: Option<String>,
    documentation_url: &'static str,
    ingestion_status: IngestionJson,
}

#[derive(Serialize)]
struct FileJson<'a> {
    name: &'a str,
    ingestion_status: &'a str,
    file_ingestion_id: &'a str,
    ingestion_status_reason: Option<&'a str>,
}

// ---------------------------------------------------------------- paginate

/// Where a page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    /// 1-based page number.
    Page(u64),
    /// Strictly after this index of the full order.
    After(usize),
    /// Strictly before this index of the full order.
    Before(usize),
}

/// One page of the entries of `all` (the full order) that match: the page,
/// `has_more` (matching entries beyond it in the direction of travel) and
/// `total` (all matching entries).
fn paginate<T: Copy>(
    all: &[T],
    matches: impl Fn(T) -> bool,
    window: Window,
    limit: usize,
) -> (Vec<T>, bool, usize) {
    let total = all.iter().filter(|t| matches(**t)).count();
    let forward = |from: usize, skip: usize| {
        let mut it = all
            .get(from..)
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|t| matches(*t))
            .skip(skip);
        let page: Vec<T> = it.by_ref().take(limit).collect();
        let more = it.next().is_some();
        (page, more)
    };
    let (page, has_more) = match window {
        Window::Page(n) => {
            let skip = n.saturating_sub(1).saturating_mul(limit as u64);
            forward(0, usize::try_from(skip).unwrap_or(usize::MAX))
        }
        Window::After(ix) => forward(ix.saturating_add(1), 0),
        Window::Before(ix) => {
            let prev: Vec<T> = all
                .get(..ix)
                .unwrap_or(all)
                .iter()
                .copied()
                .filter(|t| matches(*t))
                .collect();
            let start = prev.len().saturating_sub(limit);
            (prev[start..].to_vec(), start > 0)
        }
    };
    (page, has_more, total)
}

/// The cursor's index in the full order, or the 422 FastAPI would give.
fn cursor_index<T>(
    all: &[T],
    selection: Selection,
    id_of: impl Fn(&T) -> &str,
    what: &str,
) -> Result<Window, ApiError> {
    let (name, id, make): (&str, Uuid, fn(usize) -> Window) = match selection {
        Selection::Page(n) => return Ok(Window::Page(n)),
        Selection::After(id) => ("after", id, Window::After),
        Selection::Before(id) => ("before", id, Window::Before),
    };
    let wanted = id.hyphenated().to_string();
    all.iter()
        .position(|t| id_of(t) == wanted)
        .map(make)
        .ok_or_else(|| {
            ApiError::Validation(vec![Problem::value_error(
                &["query", name],
                &format!("{what} {wanted} does not exist"),
                serde_json::json!(wanted),
            )])
        })
}

/// Session order for `field` (see the module docs).
fn compare(a: &Session, b: &Session, field: SortField, order: Order) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let primary = match field {
        SortField::CreatedAt => a.created_at.cmp(&b.created_at),
        SortField::ExpiresAt => match (a.expires_at, b.expires_at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
        },
        SortField::Status => a.status.cmp(&b.status),
        SortField::WriteMode => a.write_mode.cmp(&b.write_mode),
        SortField::FileCount => a.files.len().cmp(&b.files.len()),
        SortField::Name | SortField::IngestionStatusReason => Ordering::Equal,
    };
    let total = primary.then_with(|| a.id.cmp(&b.id));
    match order {
        Order::Asc => total,
        Order::Desc => total.reverse(),
    }
}

// ---------------------------------------------------------------- workspace

/// One simulated workspace. All state sits behind one mutex, never held
/// across an await (storage uploads stream with it released and check the
/// session afterwards).
pub(crate) struct Workspace {
    pub(crate) spec: DeepsetSpec,
    bucket: String,
    clock: Arc<SimClock>,
    state: Mutex<State>,
    faults: FaultSet<DeepsetEndpoint>,
    /// Key of the presigned forms' signatures.
    secret: [u8; 16],
    in_flight: InFlight,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("workspace", &self.spec.workspace)
            .finish_non_exhaustive()
    }
}

impl Workspace {
    fn new(spec: DeepsetSpec, clock: Arc<SimClock>) -> Self {
        Self {
            bucket: storage::bucket_name(&spec.workspace),
            spec,
            clock,
            state: Mutex::new(State::default()),
            faults: FaultSet::default(),
            secret: rand::rng().random(),
            in_flight: InFlight::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Simulated now, to the microsecond: the clock's milliseconds plus the
    /// real clock's sub-millisecond part (the offset is whole
    /// milliseconds).
    fn now(&self) -> OffsetDateTime {
        self.clock.now_micros()
    }

    /// A settled state.
    fn settled(&self, now: OffsetDateTime) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        st.settle(now);
        st.purge(now, &self.spec);
        st
    }

    fn ts(&self, t: OffsetDateTime) -> String {
        format_ts(t, self.spec.legacy_timestamps)
    }

    /// Counts the request, applies an armed fault or runs `work`, and runs
    /// the list hooks that came due.
    async fn guarded(
        self: &Arc<Self>,
        endpoint: DeepsetEndpoint,
        ctx: &Ctx<'_>,
        echo: Option<String>,
        work: impl Future<Output = Reply>,
    ) -> Result<HttpResponse, Aborted> {
        let _counted = self.in_flight.enter();
        let ordinal = {
            let mut st = self.lock();
            let n = st.counts.entry(endpoint).or_default();
            *n += 1;
            *n
        };
        let fault = self.faults.take(endpoint);
        let out = apply_fault(fault, work, ctx.shutdown, echo).await;
        if endpoint == DeepsetEndpoint::ListSessions {
            // Before the answer is sent: the client's next request sees the
            // change.
            self.run_hooks(ordinal);
        }
        out.map(Reply::into_response)
    }

    /// The request's reflection (head only: deepset requests carry the
    /// key in the `Authorization` header), when the next fault for
    /// `endpoint` is to reflect it; `None` otherwise, which costs nothing.
    fn echo_if_reflected(
        &self,
        endpoint: DeepsetEndpoint,
        req: &Request<Incoming>,
    ) -> Option<String> {
        self.faults
            .next_reflects(endpoint)
            .then(|| faults::reflection(req.method(), req.uri(), req.headers(), b""))
    }

    fn run_hooks(self: &Arc<Self>, ordinal: u64) {
        let due: Vec<Hook> = {
            let mut st = self.lock();
            let (due, keep) = std::mem::take(&mut st.hooks)
                .into_iter()
                .partition(|h| h.at <= ordinal);
            st.hooks = keep;
            due
        };
        if due.is_empty() {
            return;
        }
        let ctl = DeepsetControl {
            inner: Arc::clone(self),
        };
        for h in due {
            (h.f)(&ctl);
        }
    }

    fn member(&self, user_id: &str) -> Option<&DeepsetUser> {
        self.spec.users.iter().find(|u| u.user_id == user_id)
    }

    async fn api(&self, op: Op, user: Option<String>, req: Request<Incoming>, host: &str) -> Reply {
        let result = async {
            let user_id = user.ok_or(ApiError::Unauthenticated)?;
            if self.member(&user_id).is_none() {
                return Err(ApiError::Forbidden(format!(
                    "You don't have access to workspace {}.",
                    self.spec.workspace
                )));
            }
            let params = Params::parse(req.uri().query());
            match op {
                Op::List => self.list(&params),
                Op::Create => self.create(&user_id, req, host).await,
                Op::Status(id) => self.status(&id),
                Op::Files(id) => self.files(&id, &params),
                Op::Close(id) => self.close(&id, req).await,
            }
        }
        .await;
        result.unwrap_or_else(|e| e.reply())
    }

    fn session_json<'a>(&'a self, s: &'a Session) -> SessionJson<'a> {
        let (given, family) = self.member(&s.user_id).map_or(("", ""), |u| {
            (u.given_name.as_str(), u.family_name.as_str())
        });
        SessionJson {
            session_id: &s.id,
            created_by: CreatedBy {
                user_id: &s.user_id,
                given_name: given,
                family_name: family,
            },
            created_at: self.ts(s.created_at),
            expires_at: s.expires_at.map(|t| self.ts(t)),
            status: &s.status,
            write_mode: &s.write_mode,
        }
    }

    fn list(&self, params: &Params) -> Result<Reply, ApiError> {
        let q = query::list_query(params)?;
        let now = self.now();
        let st = self.settled(now);
        let mut all: Vec<&Session> = st.sessions.iter().collect();
        all.sort_by(|a, b| compare(a, b, q.field, q.order));
        let window = cursor_index(&all, q.selection, |s| &s.id, "Upload session")?;
        let matches = |s: &Session| match q.is_expired {
            None => true,
            Some(want) => s.expired(now) == want,
        };
        let (page, has_more, total) = paginate(&all, matches, window, q.limit);
        let body = PageJson {
            data: page.into_iter().map(|s| self.session_json(s)).collect(),
            has_more,
            total,
        };
        Ok(Reply::json(StatusCode::OK, &body))
    }

    async fn create(
        &self,
        user_id: &str,
        req: Request<Incoming>,
        host: &str,
    ) -> Result<Reply, ApiError> {
        let (content_type, bytes) = read_json_body(req).await?;
        let body = query::create_body(content_type.as_deref(), &bytes)?;
        let ttl = body
            .expires_in_seconds
            .map_or(self.spec.session_ttl, Duration::from_secs);
        let now = self.now();
        let mut st = self.settled(now);
        let open = st
            .sessions
            .iter()
            .filter(|s| s.user_id == user_id && s.status == OPEN)
            .count();
        // Room for one more: the oldest ended session goes.
        st.keep_at_most(self.spec.max_sessions.saturating_sub(1));
        if st.sessions.len() >= self.spec.max_sessions {
            return Err(ApiError::NotAcceptable(format!(
                "This workspace holds the maximum of {} upload sessions. Close or wait for sessions to expire.",
                self.spec.max_sessions
            )));
        }
        if open >= self.spec.max_open_per_user {
            return Err(ApiError::NotAcceptable(format!(
                "You have reached the maximum of {} open upload sessions. Close a session before you open a new one.",
                self.spec.max_open_per_user
            )));
        }
        let id = new_id();
        let expires = truncate_us(clock::add(now, ttl));
        st.sessions.push(Session {
            id: id.clone(),
            user_id: user_id.to_owned(),
            created_at: now,
            expires_at: Some(expires),
            status: OPEN.to_owned(),
            write_mode: body.write_mode.unwrap_or_else(|| "KEEP".to_owned()),
            files: Vec::new(),
            closed_at: None,
        });
        drop(st);
        let fields = storage::presign(&self.secret, &self.spec.workspace, &id, now, expires);
        let created = CreatedJson {
            session_id: &id,
            documentation_url: DOCUMENTATION_URL,
            expires_at: Some(self.ts(expires)),
            aws_prefixed_request_config: RequestConfigJson {
                url: format!("http://{host}{MOUNT}/storage/{}", self.bucket),
                fields,
            },
        };
        Ok(Reply::json(StatusCode::CREATED, &created))
    }

    /// The session of a path id: 422 if it is no UUID or there are `more`
    /// validation problems (reported after the path's, as FastAPI does),
    /// else 404 if unknown.
    fn path_session<'s>(
        st: &'s mut State,
        raw: &str,
        more: Vec<Problem>,
    ) -> Result<&'s mut Session, ApiError> {
        let id = query::path_uuid("session_id", raw);
        let id = match id {
            Ok(id) if more.is_empty() => id,
            id => {
                let mut problems = id.err().unwrap_or_default();
                problems.extend(more);
                return Err(ApiError::Validation(problems));
            }
        };
        st.session_mut(&id.hyphenated().to_string())
            .ok_or_else(|| ApiError::NotFound("Session not found".to_owned()))
    }

    fn status(&self, raw_id: &str) -> Result<Reply, ApiError> {
        let mut st = self.settled(self.now());
        let s = Self::path_session(&mut st, raw_id, Vec::new())?;
        let count = |status: &str| s.files.iter().filter(|f| f.status == status).count();
        let body = StatusJson {
            session_id: &s.id,
            expires_at: s.expires_at.map(|t| self.ts(t)),
            documentation_url: DOCUMENTATION_URL,
            ingestion_status: IngestionJson {
                failed_files: count(FAILED),
                finished_files: count(FINISHED),
            },
        };
        Ok(Reply::json(StatusCode::OK, &body))
    }

    fn files(&self, raw_id: &str, params: &Params) -> Result<Reply, ApiError> {
        let q = query::files_query(params);
        let mut st = self.settled(self.now());
        let more = q.as_ref().err().cloned().unwrap_or_default();
        let s = Self::path_session(&mut st, raw_id, more)?;
        let q = q?;
        let all: Vec<&File> = s.files.iter().collect();
        let window = cursor_index(&all, q.selection, |f| &f.id, "File")?;
        let matches = |f: &File| q.status.is_none_or(|want| f.status == want);
        let (page, has_more, total) = paginate(&all, matches, window, q.limit);
        let body = PageJson {
            data: page
                .into_iter()
                .map(|f| FileJson {
                    name: &f.name,
                    ingestion_status: &f.status,
                    file_ingestion_id: &f.id,
                    ingestion_status_reason: f.reason.as_deref(),
                })
                .collect(),
            has_more,
            total,
        };
        Ok(Reply::json(StatusCode::OK, &body))
    }

    async fn close(&self, raw_id: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
        let (content_type, bytes) = read_json_body(req).await?;
        let body = query::close_body(content_type.as_deref(), &bytes);
        let now = self.now();
        let mut st = self.settled(now);
        let s = Self::path_session(&mut st, raw_id, body.err().unwrap_or_default())?;
        let at = clock::add(now, self.spec.ingestion_delay);
        if !s.close(at) {
            let why = match s.status.as_str() {
                CLOSED => "Upload session is already closed.".to_owned(),
                EXPIRED => "Upload session has expired.".to_owned(),
                other => format!("Upload session is {other} and cannot be closed."),
            };
            return Err(ApiError::Conflict(why));
        }
        // A zero delay means ingested by the next read; settle now so even
        // this request's own view is consistent.
        st.settle(now);
        Ok(Reply::no_content())
    }

    async fn storage_upload(&self, req: Request<Incoming>) -> Reply {
        let (head, body) = req.into_parts();
        let result = async {
            let form = storage::read_form(&head.headers, body).await?;
            let now = self.now();
            let v = storage::verify(&self.secret, &self.spec.workspace, &form, now)?;
            let mut st = self.settled(now);
            let s = st
                .session_mut(&v.session_id)
                .ok_or_else(|| S3Error::denied("Access Denied"))?;
            if s.status != OPEN {
                return Err(S3Error::denied(format!(
                    "Access Denied: upload session {} is {}.",
                    s.id, s.status
                )));
            }
            if !s.put_file(v.name, v.size) {
                return Err(S3Error::too_many_files(MAX_FILES_PER_SESSION));
            }
            Ok(Reply::no_content())
        }
        .await;
        result.unwrap_or_else(|e: S3Error| e.reply())
    }
}

/// Reads a JSON request body (at most [`MAX_JSON_BODY`] bytes) and its
/// `Content-Type`.
async fn read_json_body(req: Request<Incoming>) -> Result<(Option<String>, Bytes), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let bytes = Limited::new(req.into_body(), MAX_JSON_BODY)
        .collect()
        .await
        .map_err(|_| {
            ApiError::Validation(vec![Problem::new(
                "json_invalid",
                &["body"],
                "JSON decode error",
                serde_json::json!({}),
                Some(serde_json::json!({
                    "error": format!("Body is unreadable or larger than {MAX_JSON_BODY} bytes")
                })),
            )])
        })?
        .to_bytes();
    Ok((content_type, bytes))
}

// ------------------------------------------------------------------ control

/// Test and demo control of one simulated workspace. Changes take effect
/// immediately for subsequent requests. Session ids may be given in any
/// UUID form.
#[derive(Debug, Clone)]
pub struct DeepsetControl {
    inner: Arc<Workspace>,
}

impl DeepsetControl {
    /// The workspace's configuration.
    pub fn spec(&self) -> &DeepsetSpec {
        &self.inner.spec
    }

    /// Current simulated time (microseconds).
    pub fn now(&self) -> OffsetDateTime {
        self.inner.now()
    }

    /// Places a session into the workspace (ignoring the open-session
    /// limit; a session with the same id is replaced) and returns its id.
    /// Seeded files get fresh `file_ingestion_id`s; their `PENDING` files
    /// are not scheduled for ingestion (see [`ingest_now`](Self::ingest_now)).
    pub fn insert_session(&self, s: DeepsetSessionSeed) -> String {
        let id = s.id.as_deref().map_or_else(new_id, canonical);
        let session = Session {
            id: id.clone(),
            user_id: s.user_id,
            created_at: truncate_us(s.created_at),
            expires_at: s.expires_at.map(truncate_us),
            status: s.status,
            write_mode: s.write_mode,
            files: s
                .files
                .into_iter()
                .map(|f| File {
                    id: new_id(),
                    name: f.name,
                    size: f.size,
                    status: f.status,
                    reason: f.reason,
                    ingest_at: None,
                })
                .collect(),
            closed_at: None,
        };
        let mut st = self.inner.lock();
        match st.session_mut(&id) {
            Some(existing) => *existing = session,
            None => st.sessions.push(session),
        }
        id
    }

    /// Adds a `PENDING` file to an `OPEN` session, as an upload to the
    /// storage does (same name: replaced); `false` if the session is
    /// unknown or not `OPEN`.
    pub fn add_file(&self, session_id: &str, name: &str, size: u64) -> bool {
        let mut st = self.inner.settled(self.inner.now());
        match st.session_mut(&canonical(session_id)) {
            Some(s) if s.status == OPEN => s.put_file(name.to_owned(), size),
            _ => false,
        }
    }

    /// Closes an `OPEN` session as `PUT {"status":"CLOSED"}` does (its
    /// pending files are ingested after the ingestion delay); `false` if
    /// unknown or not `OPEN`.
    pub fn close_session(&self, session_id: &str) -> bool {
        let now = self.inner.now();
        let at = clock::add(now, self.inner.spec.ingestion_delay);
        let mut st = self.inner.settled(now);
        let closed = st
            .session_mut(&canonical(session_id))
            .is_some_and(|s| s.close(at));
        st.settle(now);
        closed
    }

    /// Sets `status` to any string, without side effects (setting `CLOSED`
    /// schedules no ingestion; setting `OPEN` on a session past its
    /// `expires_at` lasts until the next settle turns it `EXPIRED`).
    /// `false` if unknown.
    pub fn set_status(&self, session_id: &str, status: &str) -> bool {
        let mut st = self.inner.lock();
        match st.session_mut(&canonical(session_id)) {
            Some(s) => {
                s.status = status.to_owned();
                true
            }
            None => false,
        }
    }

    /// Sets `expires_at`; `false` if unknown.
    pub fn set_expires_at(&self, session_id: &str, expires_at: Option<OffsetDateTime>) -> bool {
        let mut st = self.inner.lock();
        match st.session_mut(&canonical(session_id)) {
            Some(s) => {
                s.expires_at = expires_at.map(truncate_us);
                true
            }
            None => false,
        }
    }

    /// Ends every pending ingestion of `CLOSED` sessions now, due or not
    /// (seeded pending files included).
    pub fn ingest_now(&self) {
        let mut st = self.inner.settled(self.inner.now());
        for s in st.sessions.iter_mut().filter(|s| s.status == CLOSED) {
            for f in s.files.iter_mut().filter(|f| f.status == PENDING) {
                f.ingest();
            }
        }
    }

    /// Every session, in creation order, settled.
    pub fn sessions(&self) -> Vec<DeepsetSessionView> {
        let st = self.inner.settled(self.inner.now());
        st.sessions.iter().map(Session::view).collect()
    }

    /// One session, settled.
    pub fn session(&self, session_id: &str) -> Option<DeepsetSessionView> {
        let st = self.inner.settled(self.inner.now());
        st.session(&canonical(session_id)).map(Session::view)
    }

    /// Arms a fault.
    pub fn inject(&self, rule: FaultRule<DeepsetEndpoint>) {
        self.inner.faults.push(rule);
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.inner.faults.clear();
    }

    /// The armed faults, in firing order, with the uses they have left.
    pub fn faults(&self) -> Vec<FaultRule<DeepsetEndpoint>> {
        self.inner.faults.snapshot()
    }

    /// The most requests to this workspace that were being served at the
    /// same moment (see [`Simulator::max_in_flight`](super::Simulator::max_in_flight)).
    pub fn max_in_flight(&self) -> u64 {
        self.inner.in_flight.max()
    }

    /// Requests received for `endpoint` in this workspace (faulted and
    /// rejected ones included; requests to unknown workspaces are not
    /// counted anywhere).
    pub fn request_count(&self, endpoint: DeepsetEndpoint) -> u64 {
        self.inner
            .lock()
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    /// Runs `f` once, right after the `n`-th list-sessions request from now
    /// (1-based; faulted ones count) has its answer computed and before the
    /// answer is sent, so the client's next request sees what `f` changed.
    /// `n = 0` runs `f` at once.
    pub fn after_list_request(&self, n: u64, f: impl FnOnce(&DeepsetControl) + Send + 'static) {
        if n == 0 {
            f(self);
            return;
        }
        let mut st = self.inner.lock();
        let seen = st
            .counts
            .get(&DeepsetEndpoint::ListSessions)
            .copied()
            .unwrap_or(0);
        st.hooks.push(Hook {
            at: seen.saturating_add(n),
            f: Box::new(f),
        });
    }
}

/// Rejects deepset configurations the server cannot serve sensibly.
pub(crate) fn validate(specs: &[DeepsetSpec]) -> Result<(), String> {
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for (i, spec) in specs.iter().enumerate() {
        let name_ok = !spec.workspace.is_empty()
            && spec
                .workspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !name_ok {
            return Err(format!(
                "deepset workspace name {:?} must be letters, digits, '-', '_' or '.'",
                spec.workspace
            ));
        }
        if specs[..i].iter().any(|o| o.workspace == spec.workspace) {
            return Err(format!("duplicate deepset workspace {:?}", spec.workspace));
        }
        for (j, u) in spec.users.iter().enumerate() {
            if Uuid::parse_str(&u.user_id).is_err() {
                return Err(format!(
                    "deepset workspace {:?}: user id {:?} is not a UUID",
                    spec.workspace, u.user_id
                ));
            }
            if u.api_key.is_empty() || u.api_key.chars().any(char::is_whitespace) {
                return Err(format!(
                    "deepset workspace {:?}: API key of user {} must be non-empty without spaces",
                    spec.workspace, u.user_id
                ));
            }
            if spec.users[..j].iter().any(|o| o.user_id == u.user_id) {
                return Err(format!(
                    "deepset workspace {:?}: duplicate user id {}",
                    spec.workspace, u.user_id
                ));
            }
            match keys.insert(&u.api_key, &u.user_id) {
                Some(other) if other != u.user_id => {
                    return Err(format!(
                        "deepset API key of user {} is also the key of user {other}",
                        u.user_id
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn routes() {
        fn r(m: Method, p: &str) -> Result<Route<'_>, RouteError> {
            parse_route(&m, p)
        }
        let ws = "/api/v1/workspaces/default/upload_sessions";
        assert_eq!(
            r(Method::GET, ws),
            Ok(Route::Api {
                workspace: "default",
                op: Op::List
            })
        );
        assert_eq!(
            r(Method::PUT, &format!("{ws}/abc/")),
            Ok(Route::Api {
                workspace: "default",
                op: Op::Close("abc".into())
            })
        );
        assert_eq!(
            r(Method::GET, &format!("{ws}/abc/files")),
            Ok(Route::Api {
                workspace: "default",
                op: Op::Files("abc".into())
            })
        );
        assert_eq!(
            r(Method::DELETE, ws),
            Err(RouteError::Method { storage: false })
        );
        assert_eq!(
            r(Method::POST, &format!("{ws}/abc/files")),
            Err(RouteError::Method { storage: false })
        );
        assert_eq!(
            r(Method::GET, "/api/v1/workspaces//upload_sessions"),
            Err(RouteError::NotFound { storage: false })
        );
        assert_eq!(
            r(Method::POST, "/storage/b"),
            Ok(Route::Storage { bucket: "b" })
        );
        assert_eq!(
            r(Method::GET, "/storage/b"),
            Err(RouteError::Method { storage: true })
        );
        assert_eq!(
            r(Method::POST, "/storage/b/c"),
            Err(RouteError::NotFound { storage: true })
        );
        assert_eq!(
            r(Method::GET, ""),
            Err(RouteError::NotFound { storage: false })
        );
    }

    #[test]
    fn ingestion_rules_in_order() {
        assert_eq!(ingestion_outcome("a.txt", 1), (FINISHED, None));
        assert_eq!(ingestion_outcome("dir/Report.PDF", 9), (FINISHED, None));
        assert_eq!(
            ingestion_outcome("a.zip", 0),
            (FAILED, Some("Unsupported file type"))
        );
        assert_eq!(
            ingestion_outcome("txt", 5),
            (FAILED, Some("Unsupported file type"))
        );
        assert_eq!(
            ingestion_outcome("corrupt.md", 0),
            (FAILED, Some("File is empty"))
        );
        assert_eq!(
            ingestion_outcome("Corrupted-scan.pdf", 10),
            (FAILED, Some("Failed to parse file"))
        );
    }

    #[test]
    fn pages_cursors_and_totals() {
        let all: Vec<u32> = (0..10).collect();
        let even = |n: u32| n.is_multiple_of(2);
        assert_eq!(
            paginate(&all, even, Window::Page(1), 2),
            (vec![0, 2], true, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::Page(3), 2),
            (vec![8], false, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::Page(u64::MAX), 2),
            (vec![], false, 5)
        );
        // After/before an entry that does not match the filter itself.
        assert_eq!(
            paginate(&all, even, Window::After(3), 2),
            (vec![4, 6], true, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::After(5), 2),
            (vec![6, 8], false, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::Before(7), 2),
            (vec![4, 6], true, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::Before(3), 2),
            (vec![0, 2], false, 5)
        );
        assert_eq!(
            paginate(&all, even, Window::After(9), 2),
            (vec![], false, 5)
        );
    }

    fn session(id: &str, created: OffsetDateTime, expires: Option<OffsetDateTime>) -> Session {
        Session {
            id: id.into(),
            user_id: DEMO_USER_ID.into(),
            created_at: created,
            expires_at: expires,
            status: OPEN.into(),
            write_mode: "KEEP".into(),
            files: Vec::new(),
            closed_at: None,
        }
    }

    #[test]
    fn order_is_total_with_nulls_last_ascending() {
        let t = datetime!(2025-01-01 0:00 UTC);
        let a = session("a", t, None);
        let b = session("b", t, Some(t));
        let c = session("c", t, Some(t));
        let mut v = [&a, &c, &b];
        v.sort_by(|x, y| compare(x, y, SortField::ExpiresAt, Order::Asc));
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["b", "c", "a"]);
        v.sort_by(|x, y| compare(x, y, SortField::ExpiresAt, Order::Desc));
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "c", "b"]);
        v.sort_by(|x, y| compare(x, y, SortField::Name, Order::Asc));
        let ids: Vec<&str> = v.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, vec!["a", "b", "c"]);
    }

    #[test]
    fn settle_expires_open_and_ingests_due() {
        let t = datetime!(2025-01-01 0:00 UTC);
        let mut st = State::default();
        st.sessions.push(session("open", t, Some(t)));
        let mut closed = session("closed", t, Some(t));
        closed.put_file("a.txt".into(), 3);
        closed.put_file("b.exe".into(), 3);
        assert!(closed.close(t + time::Duration::seconds(3)));
        assert!(!closed.close(t));
        st.sessions.push(closed);
        st.settle(t + time::Duration::seconds(2));
        assert_eq!(st.sessions[0].status, EXPIRED);
        assert_eq!(st.sessions[1].status, CLOSED);
        assert_eq!(st.sessions[1].files[0].status, PENDING);
        st.settle(t + time::Duration::seconds(3));
        let files: Vec<(&str, Option<&str>)> = st.sessions[1]
            .files
            .iter()
            .map(|f| (f.status.as_str(), f.reason.as_deref()))
            .collect();
        assert_eq!(
            files,
            vec![(FINISHED, None), (FAILED, Some("Unsupported file type"))]
        );
    }

    #[test]
    fn configurations() {
        assert_eq!(validate(&[DeepsetSpec::new("default")]), Ok(()));
        assert!(validate(&[DeepsetSpec::new("a/b")]).is_err());
        assert!(validate(&[DeepsetSpec::new("a"), DeepsetSpec::new("a")]).is_err());
        let mut bad = DeepsetSpec::new("a");
        bad.users[0].user_id = "42".into();
        assert!(validate(&[bad]).is_err());
        let mut shared = DeepsetSpec::new("b");
        shared.users.push(DeepsetUser::new(
            "0f8b8a5e-4a47-4c3e-8f4a-2b7d1f2e3c4d",
            "X",
            "Y",
            DEMO_API_KEY,
        ));
        assert!(validate(&[shared]).is_err());
        // The same user in two workspaces is fine.
        assert_eq!(
            validate(&[DeepsetSpec::new("a"), DeepsetSpec::new("b")]),
            Ok(())
        );
    }

    #[tokio::test]
    async fn oversized_is_exact() {
        use http_body_util::BodyExt;
        for n in [0, 5, 50, 51, 52, 1000] {
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
}
