//! A simulator of S3-compatible multipart uploads, served on a listener of
//! its own ([`Simulator::s3_url`](super::Simulator::s3_url)), path-style:
//! a client points at `http://{addr}` as its endpoint and names the bucket
//! first in the path (boto3: `endpoint_url=sim.s3_url()`,
//! `Config(s3={"addressing_style": "path"})`, region [`REGION`]).
//!
//! # Virtual-hosted style
//!
//! With [`S3Spec::domain`] set (say `s3.sim.test`, as MinIO's
//! `MINIO_DOMAIN`), a request for host `{bucket}.s3.sim.test[:port]` names
//! the bucket by its host and its whole path is the key (`GET /?uploads`
//! lists that bucket's uploads); requests for any other host stay
//! path-style. The host is the authority of an absolute-form target (`GET
//! http://up.s3.sim.test:9000/?uploads`, as clients send through an HTTP
//! proxy, so a test can make the simulator the client's `http_proxy`
//! instead of resolving names), else the `Host` header. The signature
//! covers the `Host` header as sent, as on S3. The routes below are then
//! written without `/{bucket}`.
//!
//! # Routes
//!
//! | request | operation |
//! | --- | --- |
//! | `GET /` | ListBuckets |
//! | `PUT /{bucket}` | CreateBucket (409 `BucketAlreadyOwnedByYou` if it exists) |
//! | `HEAD /{bucket}`, `DELETE /{bucket}` | HeadBucket, DeleteBucket (409 `BucketNotEmpty` with objects or uploads) |
//! | `GET /{bucket}?uploads` | ListMultipartUploads |
//! | `GET`/`PUT`/`DELETE /{bucket}?lifecycle` | lifecycle configuration |
//! | `POST /{bucket}/{key}?uploads` | CreateMultipartUpload |
//! | `PUT /{bucket}/{key}?partNumber=N&uploadId=U` | UploadPart |
//! | `GET /{bucket}/{key}?uploadId=U` | ListParts |
//! | `POST /{bucket}/{key}?uploadId=U` | CompleteMultipartUpload |
//! | `DELETE /{bucket}/{key}?uploadId=U` | AbortMultipartUpload (204) |
//! | `PUT`/`GET`/`HEAD`/`DELETE /{bucket}/{key}` | PutObject, GetObject, HeadObject, DeleteObject |
//!
//! Anything else answers 501 `NotImplemented` (e.g. ListObjects, other
//! bucket subresources) or 405 `MethodNotAllowed`.
//!
//! # Order of checks
//!
//! Unknown route → 501/405; armed faults (they act like a gateway, before
//! authentication; a bucket's faults fire before the service-wide ones);
//! authentication (below); the operation's own checks (`NoSuchBucket`,
//! `NoSuchUpload`, `InvalidArgument`...). Every error is S3's XML
//! `<Error><Code/><Message/>...<Resource/><RequestId/></Error>`; every
//! answer has `x-amz-request-id`. No error carries a secret, but for the
//! `reflect_request` fault, which plays a hostile store: its message
//! echoes the secret access key of the request's key id, the session token
//! and the request (`Authorization` first).
//!
//! # Authentication: SigV4, header form, verified
//!
//! No `Authorization` → 403 `AccessDenied`; a header that is not
//! `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`,
//! a scope whose service is not `s3` or whose region is not
//! [`S3Spec::region`] → 400 `AuthorizationHeaderMalformed`; unknown access
//! key id → 403 `InvalidAccessKeyId`; a user with temporary credentials
//! ([`S3User::session_token`]) whose request lacks the token or carries
//! another → 403 `InvalidToken`... 400 as S3 does, and with the token marked
//! expired ([`S3Control::set_token_expired`]) → 400 `ExpiredToken`;
//! `x-amz-date` missing or over 15 minutes from *real* time (clients sign
//! with it; the simulated clock is for the data) → 403
//! `RequestTimeTooSkewed`; `x-amz-content-sha256` missing → 400
//! `InvalidRequest`; a wrong signature → 403 `SignatureDoesNotMatch`
//! (with the string to sign, as S3 gives it, but never the secret). A
//! payload hash that is 64 hex digits is checked against the body → 400
//! `XAmzContentSHA256Mismatch`; `UNSIGNED-PAYLOAD` is accepted, streaming
//! (`STREAMING-*`) payloads answer 501. `x-amz-checksum-*` headers are
//! ignored.
//!
//! # Listing
//!
//! ListMultipartUploads: `prefix`, `key-marker`, `upload-id-marker`,
//! `max-uploads` (1–1000, default 1000; else 400 `InvalidArgument`),
//! `encoding-type=url` (keys and markers URL-encoded, `EncodingType`
//! echoed), `delimiter` echoed but not applied (no `CommonPrefixes`).
//! Order: key, then initiation time, then upload id. Markers: uploads
//! whose key is after `key-marker`, or equal to it and after the upload
//! `upload-id-marker` (ignored without a key marker). `NextKeyMarker` /
//! `NextUploadIdMarker` are the last upload listed (empty if none).
//! Generated upload ids sort in initiation order, so a marker whose upload
//! was completed or aborted since still resumes in the right place.
//! ListParts: `max-parts` (1–1000, default 1000), `part-number-marker`
//! (parts after it); `NextPartNumberMarker` is the last part listed (0 if
//! none).
//!
//! # Uploads
//!
//! Part numbers 1–10000; a part body of at most [`storage::MAX_PART_BYTES`]
//! is streamed and hashed, never kept (ETag = quoted MD5 hex); bigger →
//! 400 `EntityTooLarge`. The 5 MiB minimum part size is **not** enforced,
//! so tests can use small parts. Complete checks that parts are listed in
//! ascending order (`InvalidPartOrder`), exist and match their ETag
//! (`InvalidPart`); the object's ETag is S3's `md5-of-md5s-N`. Caps keep
//! memory bounded ([`storage`] constants): past them CreateBucket answers
//! `TooManyBuckets`, CreateMultipartUpload and UploadPart `InvalidRequest`.
//!
//! # Lifecycle
//!
//! Rules are stored and answered back (`ID`, `Filter` with `Prefix`, `Tag`
//! or `And`, or legacy top-level `Prefix`, `Status`, `Expiration/Days`,
//! `AbortIncompleteMultipartUpload/DaysAfterInitiation`). No
//! configuration → 404 `NoSuchLifecycleConfiguration`. An enabled abort
//! rule acts on the simulated clock: an upload whose key matches and whose
//! `Initiated + days`, rounded up to the next midnight UTC, is not after
//! now is gone from every listing (applied before every request and
//! control call). Expiration rules are stored only.

mod demo;
mod sigv4;
mod storage;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, HOST};
use hyper::{Method, Request, StatusCode};
use md5::{Digest, Md5};
use sha2::Sha256;
use time::OffsetDateTime;

use super::clock::SimClock;
use super::faults::{self, lock, FaultKind, FaultRule, FaultSet, FaultTarget};
use super::http::{Aborted, HttpResponse, InFlight, ShutdownSignal, SimBody};
use storage::{Bucket, Object, Part, Upload};
use wire::{Reply, S3Error, Xml};

pub(crate) use demo::run as run_demo;

/// Name of the demo bucket ([`S3Spec::demo`]).
pub(crate) fn demo_bucket() -> &'static str {
    demo::BUCKET
}
pub use storage::{
    MAX_BUCKETS, MAX_OBJECTS_PER_BUCKET, MAX_PARTS_PER_BUCKET, MAX_PART_BYTES, MAX_PART_NUMBER,
    MAX_UPLOADS_PER_BUCKET,
};

/// The region every request must be signed for (unless configured).
pub const REGION: &str = "us-east-1";
/// Access key id of the demo user.
pub const S3_DEMO_ACCESS_KEY_ID: &str = "AKIASIMULATORDEMO001";
/// Secret access key of the demo user.
pub const S3_DEMO_SECRET_ACCESS_KEY: &str = "simDemoSecretKey/0000/DoNotUseAnywhere00";
/// Account id in the demo users' ARNs.
pub const DEMO_ACCOUNT_ID: &str = "111122223333";
/// Canonical user id of the demo account (the uploads' `Owner.ID`).
pub const DEMO_OWNER_ID: &str = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a";
/// Largest XML request body (complete, lifecycle).
const MAX_XML_BODY: usize = 1024 * 1024;
/// Clock skew accepted between a request's `x-amz-date` and real time.
const MAX_SKEW: time::Duration = time::Duration::minutes(15);

/// The S3 calls the simulator serves, for request counting and for
/// targeting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum S3Endpoint {
    /// `GET /`
    ListBuckets,
    /// `PUT /{bucket}`
    CreateBucket,
    /// `HEAD /{bucket}`
    HeadBucket,
    /// `DELETE /{bucket}`
    DeleteBucket,
    /// `GET /{bucket}?uploads`
    ListMultipartUploads,
    /// `GET /{bucket}?lifecycle`
    GetLifecycle,
    /// `PUT /{bucket}?lifecycle`
    PutLifecycle,
    /// `DELETE /{bucket}?lifecycle`
    DeleteLifecycle,
    /// `POST /{bucket}/{key}?uploads`
    CreateMultipartUpload,
    /// `PUT /{bucket}/{key}?partNumber=N&uploadId=U`
    UploadPart,
    /// `GET /{bucket}/{key}?uploadId=U`
    ListParts,
    /// `POST /{bucket}/{key}?uploadId=U`
    CompleteMultipartUpload,
    /// `DELETE /{bucket}/{key}?uploadId=U`
    AbortMultipartUpload,
    /// `PUT /{bucket}/{key}`
    PutObject,
    /// `GET` or `HEAD /{bucket}/{key}`
    GetObject,
    /// `DELETE /{bucket}/{key}`
    DeleteObject,
}

impl S3Endpoint {
    /// Every endpoint, in declaration order.
    pub const ALL: [S3Endpoint; 16] = [
        S3Endpoint::ListBuckets,
        S3Endpoint::CreateBucket,
        S3Endpoint::HeadBucket,
        S3Endpoint::DeleteBucket,
        S3Endpoint::ListMultipartUploads,
        S3Endpoint::GetLifecycle,
        S3Endpoint::PutLifecycle,
        S3Endpoint::DeleteLifecycle,
        S3Endpoint::CreateMultipartUpload,
        S3Endpoint::UploadPart,
        S3Endpoint::ListParts,
        S3Endpoint::CompleteMultipartUpload,
        S3Endpoint::AbortMultipartUpload,
        S3Endpoint::PutObject,
        S3Endpoint::GetObject,
        S3Endpoint::DeleteObject,
    ];

    /// The endpoint's name in the admin API, e.g. `list_multipart_uploads`.
    pub fn name(self) -> &'static str {
        match self {
            S3Endpoint::ListBuckets => "list_buckets",
            S3Endpoint::CreateBucket => "create_bucket",
            S3Endpoint::HeadBucket => "head_bucket",
            S3Endpoint::DeleteBucket => "delete_bucket",
            S3Endpoint::ListMultipartUploads => "list_multipart_uploads",
            S3Endpoint::GetLifecycle => "get_lifecycle",
            S3Endpoint::PutLifecycle => "put_lifecycle",
            S3Endpoint::DeleteLifecycle => "delete_lifecycle",
            S3Endpoint::CreateMultipartUpload => "create_multipart_upload",
            S3Endpoint::UploadPart => "upload_part",
            S3Endpoint::ListParts => "list_parts",
            S3Endpoint::CompleteMultipartUpload => "complete_multipart_upload",
            S3Endpoint::AbortMultipartUpload => "abort_multipart_upload",
            S3Endpoint::PutObject => "put_object",
            S3Endpoint::GetObject => "get_object",
            S3Endpoint::DeleteObject => "delete_object",
        }
    }
}

impl FaultTarget for S3Endpoint {
    const ALL: &'static [Self] = &S3Endpoint::ALL;

    fn name(self) -> &'static str {
        S3Endpoint::name(self)
    }
}

/// Who initiated or owns something: `ID` and `DisplayName`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Identity {
    /// An IAM ARN (users, assumed roles) or a canonical user id (owners).
    pub id: String,
    /// Display name (empty = the element is left out, as AWS now often
    /// does).
    pub display_name: String,
}

impl S3Identity {
    /// An identity.
    pub fn new(id: &str, display_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
        }
    }
}

/// A user who can sign requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3User {
    /// Access key id (`AKIA...` long-term, `ASIA...` temporary).
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Temporary credentials: the `x-amz-security-token` every request
    /// must carry.
    pub session_token: Option<String>,
    /// `Initiator` of the uploads this user creates.
    pub identity: S3Identity,
}

impl S3User {
    /// A user with long-term credentials.
    pub fn new(
        access_key_id: &str,
        secret_access_key: &str,
        arn: &str,
        display_name: &str,
    ) -> Self {
        Self {
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            session_token: None,
            identity: S3Identity::new(arn, display_name),
        }
    }

    /// The demo user: [`S3_DEMO_ACCESS_KEY_ID`] /
    /// [`S3_DEMO_SECRET_ACCESS_KEY`], `arn:aws:iam::111122223333:user/demo`.
    pub fn demo() -> Self {
        Self::new(
            S3_DEMO_ACCESS_KEY_ID,
            S3_DEMO_SECRET_ACCESS_KEY,
            &format!("arn:aws:iam::{DEMO_ACCOUNT_ID}:user/demo"),
            "demo",
        )
    }
}

/// A lifecycle rule's filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleFilter {
    /// Neither `Filter` nor `Prefix`: every key.
    None,
    /// Legacy top-level `<Prefix>`.
    LegacyPrefix(String),
    /// `<Filter/>`: every key.
    Empty,
    /// `<Filter><Prefix>`.
    Prefix(String),
    /// `<Filter><Tag>` or `<Filter><And>` (prefix and tags).
    And {
        /// Key prefix.
        prefix: Option<String>,
        /// Tags (key, value).
        tags: Vec<(String, String)>,
    },
}

impl RuleFilter {
    /// Whether a key matches (tags are never matched: uploads have none).
    pub fn matches(&self, key: &str) -> bool {
        match self {
            RuleFilter::None | RuleFilter::Empty => true,
            RuleFilter::LegacyPrefix(p) | RuleFilter::Prefix(p) => key.starts_with(p.as_str()),
            RuleFilter::And { prefix, tags } => {
                tags.is_empty() && prefix.as_deref().is_none_or(|p| key.starts_with(p))
            }
        }
    }

    fn has_tags(&self) -> bool {
        matches!(self, RuleFilter::And { tags, .. } if !tags.is_empty())
    }
}

/// One lifecycle rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// `ID` (may be empty).
    pub id: String,
    /// Which keys it applies to.
    pub filter: RuleFilter,
    /// `Status` `Enabled` (true) or `Disabled`.
    pub enabled: bool,
    /// `AbortIncompleteMultipartUpload/DaysAfterInitiation`.
    pub abort_after_days: Option<u32>,
    /// `Expiration/Days` (stored and answered only).
    pub expiration_days: Option<u32>,
}

impl LifecycleRule {
    /// An enabled rule aborting uploads under `prefix` after `days`.
    pub fn abort_after(id: &str, prefix: &str, days: u32) -> Self {
        Self {
            id: id.to_owned(),
            filter: RuleFilter::Prefix(prefix.to_owned()),
            enabled: true,
            abort_after_days: Some(days),
            expiration_days: None,
        }
    }
}

/// A multipart upload to place into a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3UploadSeed {
    /// Upload id; `None` = a generated one (sorting in initiation order).
    pub id: Option<String>,
    /// Object key.
    pub key: String,
    /// `Initiator`.
    pub initiator: S3Identity,
    /// `Initiated`.
    pub initiated: OffsetDateTime,
    /// Parts as (part number, size in bytes); each part's `LastModified`
    /// is `initiated` plus its number in minutes, its ETag the MD5 of a
    /// description of it (no bytes exist).
    pub parts: Vec<(u32, u64)>,
}

impl S3UploadSeed {
    /// An upload without parts.
    pub fn new(key: &str, initiator: S3Identity, initiated: OffsetDateTime) -> Self {
        Self {
            id: None,
            key: key.to_owned(),
            initiator,
            initiated,
            parts: Vec::new(),
        }
    }
}

/// One bucket of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3BucketSpec {
    /// Bucket name (3–63 of `a-z 0-9 . -`).
    pub name: String,
    /// `CreationDate`; `None` = the start.
    pub created: Option<OffsetDateTime>,
    /// Lifecycle rules; `None` = no configuration.
    pub lifecycle: Option<Vec<LifecycleRule>>,
    /// Open multipart uploads at the start.
    pub uploads: Vec<S3UploadSeed>,
}

impl S3BucketSpec {
    /// An empty bucket without lifecycle configuration.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            created: None,
            lifecycle: None,
            uploads: Vec::new(),
        }
    }
}

/// The S3 side of a simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Spec {
    /// Region requests must be signed for.
    pub region: String,
    /// Bucket owner (`Owner` of buckets and uploads).
    pub owner: S3Identity,
    /// Who can sign requests.
    pub users: Vec<S3User>,
    /// Buckets at the start.
    pub buckets: Vec<S3BucketSpec>,
    /// Virtual-hosted addressing, as MinIO's `MINIO_DOMAIN`: a request for
    /// host `{bucket}.{domain}` (any port) addresses that bucket and its
    /// path is the key; any other host, the domain itself included, is
    /// path-style. `None`: path-style only.
    pub domain: Option<String>,
}

impl S3Spec {
    /// Region [`REGION`], the demo owner, [`S3User::demo`], no buckets,
    /// path-style only.
    pub fn new() -> Self {
        Self {
            region: REGION.to_owned(),
            owner: S3Identity::new(DEMO_OWNER_ID, "sim-owner"),
            users: vec![S3User::demo()],
            buckets: Vec::new(),
            domain: None,
        }
    }

    /// [`new`](Self::new) plus the demo uploaders: `AKIASIMULATORDEMO002`
    /// (Priya Patel, IAM user) and `ASIASIMULATORDEMO003` (an assumed
    /// role, temporary credentials with session token
    /// `sim-session-token-demo`), secrets `...Secret002`/`...003`; and
    /// bucket `demo-uploads` with a 1-day abort rule.
    pub fn demo() -> Self {
        let mut s = Self::new();
        s.users.push(S3User::new(
            "AKIASIMULATORDEMO002",
            "simDemoSecretKey/0000/DoNotUseAnywhere02",
            &format!("arn:aws:iam::{DEMO_ACCOUNT_ID}:user/priya.patel"),
            "priya.patel",
        ));
        let mut role = S3User::new(
            "ASIASIMULATORDEMO003",
            "simDemoSecretKey/0000/DoNotUseAnywhere03",
            &format!("arn:aws:sts::{DEMO_ACCOUNT_ID}:assumed-role/uploader/ci-job-42"),
            "uploader/ci-job-42",
        );
        role.session_token = Some("sim-session-token-demo".to_owned());
        s.users.push(role);
        let mut b = S3BucketSpec::new(demo::BUCKET);
        b.lifecycle = Some(vec![LifecycleRule::abort_after(
            "abort-stale-uploads",
            "",
            1,
        )]);
        s.buckets.push(b);
        s
    }
}

impl Default for S3Spec {
    fn default() -> Self {
        Self::new()
    }
}

/// Snapshot of an open upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3UploadView {
    /// Upload id.
    pub id: String,
    /// Key.
    pub key: String,
    /// `Initiator`.
    pub initiator: S3Identity,
    /// `Initiated`.
    pub initiated: OffsetDateTime,
    /// Parts as (number, size), ascending.
    pub parts: Vec<(u32, u64)>,
}

/// Checks a configuration.
pub(crate) fn validate(spec: &S3Spec) -> Result<(), String> {
    for (i, u) in spec.users.iter().enumerate() {
        if u.access_key_id.is_empty() || u.secret_access_key.is_empty() {
            return Err("S3 users need an access key id and a secret".to_owned());
        }
        if spec.users[..i]
            .iter()
            .any(|o| o.access_key_id == u.access_key_id)
        {
            return Err(format!("duplicate S3 access key id {:?}", u.access_key_id));
        }
    }
    if let Some(d) = &spec.domain {
        let label = |l: &str| {
            (1..=63).contains(&l.len()) && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        };
        if !d.split('.').all(label) {
            return Err(format!("S3 domain {d:?} is not a host name"));
        }
    }
    if spec.buckets.len() > MAX_BUCKETS {
        return Err(format!("at most {MAX_BUCKETS} S3 buckets"));
    }
    for (i, b) in spec.buckets.iter().enumerate() {
        if !valid_bucket_name(&b.name) {
            return Err(format!("S3 bucket name {:?} is not valid", b.name));
        }
        if spec.buckets[..i].iter().any(|o| o.name == b.name) {
            return Err(format!("duplicate S3 bucket {:?}", b.name));
        }
        if b.uploads.len() > MAX_UPLOADS_PER_BUCKET {
            return Err(format!("bucket {:?}: too many uploads", b.name));
        }
        for u in &b.uploads {
            if u.parts.iter().any(|(n, _)| *n == 0 || *n > MAX_PART_NUMBER) {
                return Err(format!("bucket {:?}: part number out of 1..=10000", b.name));
            }
        }
    }
    Ok(())
}

fn valid_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .as_bytes()
            .last()
            .is_some_and(u8::is_ascii_alphanumeric)
}

// ------------------------------------------------------------------- state

#[derive(Debug, Default)]
struct State {
    buckets: BTreeMap<String, Bucket>,
    /// Sequence of generated upload ids.
    seq: u64,
    counts: HashMap<S3Endpoint, u64>,
    /// Requests whose bucket was named by the host (virtual-hosted).
    virtual_hosted: u64,
    /// Access key ids whose session token is marked expired.
    expired_tokens: Vec<String>,
}

impl State {
    fn settle(&mut self, now: OffsetDateTime) {
        for b in self.buckets.values_mut() {
            b.settle(now);
        }
    }

    fn next_id(&mut self, initiated: OffsetDateTime) -> String {
        self.seq += 1;
        storage::new_upload_id(initiated, self.seq)
    }

    fn seed(&mut self, bucket: &str, s: S3UploadSeed) -> Option<String> {
        let id = match s.id.clone() {
            Some(id) => id,
            None => self.next_id(s.initiated),
        };
        let b = self.buckets.get_mut(bucket)?;
        let parts = s
            .parts
            .iter()
            .map(|&(n, size)| {
                let md5 = hex::encode(Md5::digest(format!("{bucket}/{}/{id}/{n}/{size}", s.key)));
                let last_modified =
                    crate::clock::add(s.initiated, Duration::from_secs(60 * u64::from(n)));
                (
                    n,
                    Part {
                        size,
                        md5,
                        last_modified,
                    },
                )
            })
            .collect();
        b.insert(Upload {
            id: id.clone(),
            key: s.key,
            initiator: s.initiator,
            storage_class: "STANDARD".to_owned(),
            initiated: crate::clock::truncate_ms(s.initiated),
            parts,
        });
        Some(id)
    }
}

/// The S3 side: every bucket, the users and the faults.
pub(crate) struct S3 {
    spec: S3Spec,
    clock: Arc<SimClock>,
    state: Mutex<State>,
    /// Faults for every request.
    faults: FaultSet<S3Endpoint>,
    /// Faults per bucket name.
    bucket_faults: Mutex<HashMap<String, Arc<FaultSet<S3Endpoint>>>>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("buckets", &self.spec.buckets.len())
            .finish_non_exhaustive()
    }
}

/// A parsed request line.
#[derive(Debug)]
struct Target {
    bucket: Option<String>,
    key: Option<String>,
    query: Vec<(String, String)>,
}

impl Target {
    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// `/{bucket}` or `/{bucket}/{key}`, for error `Resource`.
    fn resource(&self) -> String {
        match (&self.bucket, &self.key) {
            (None, _) => "/".to_owned(),
            (Some(b), None) => format!("/{b}"),
            (Some(b), Some(k)) => format!("/{b}/{k}"),
        }
    }
}

/// The bucket a host `{bucket}.{domain}[:port]` names (lower-cased, as
/// host names are case-insensitive); `None` for any other host.
fn host_bucket(host: &str, domain: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let cut = name.len().checked_sub(domain.len() + 1)?;
    let (bucket, rest) = (name.get(..cut)?, name.get(cut..)?);
    (!bucket.is_empty() && rest.starts_with('.') && rest[1..].eq_ignore_ascii_case(domain))
        .then(|| bucket.to_ascii_lowercase())
}

/// Parses the request target; `host_bucket` is the bucket the host named
/// (virtual-hosted style: the whole path is then the key).
fn parse_target(path: &str, query: &str, host_bucket: Option<String>) -> Result<Target, S3Error> {
    let decode = |s: &str| {
        String::from_utf8(sigv4::percent_decode(s)).map_err(|_| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidURI",
                "Couldn't parse the specified URI.",
            )
        })
    };
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match host_bucket {
        Some(b) => (Some(b), rest),
        None => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket = if bucket.is_empty() {
                None
            } else {
                Some(decode(bucket)?)
            };
            (bucket, key)
        }
    };
    let key = if key.is_empty() {
        None
    } else {
        Some(decode(key)?)
    };
    let mut q = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        // Query values may use `+` for spaces (form encoding).
        let v = v.replace('+', " ");
        q.push((decode(k)?, decode(&v)?));
    }
    Ok(Target {
        bucket,
        key,
        query: q,
    })
}

fn operation(method: &Method, t: &Target) -> Result<S3Endpoint, S3Error> {
    use S3Endpoint as E;
    let not_allowed = || {
        S3Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )
    };
    let not_implemented = || {
        S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "A header or query you provided implies functionality that is not implemented.",
        )
    };
    const BUCKET_SUBRESOURCES: [&str; 18] = [
        "acl",
        "cors",
        "encryption",
        "location",
        "logging",
        "notification",
        "ownershipControls",
        "policy",
        "publicAccessBlock",
        "replication",
        "requestPayment",
        "tagging",
        "versioning",
        "versions",
        "website",
        "object-lock",
        "accelerate",
        "list-type",
    ];
    match (&t.bucket, &t.key) {
        (None, _) => match *method {
            Method::GET => Ok(E::ListBuckets),
            _ => Err(not_allowed()),
        },
        (Some(_), None) => {
            if t.has("uploads") {
                return if *method == Method::GET {
                    Ok(E::ListMultipartUploads)
                } else {
                    Err(not_allowed())
                };
            }
            if t.has("lifecycle") {
                return match *method {
                    Method::GET => Ok(E::GetLifecycle),
                    Method::PUT => Ok(E::PutLifecycle),
                    Method::DELETE => Ok(E::DeleteLifecycle),
                    _ => Err(not_allowed()),
                };
            }
            if BUCKET_SUBRESOURCES.iter().any(|s| t.has(s)) {
                return Err(not_implemented());
            }
            match *method {
                Method::PUT => Ok(E::CreateBucket),
                Method::HEAD => Ok(E::HeadBucket),
                Method::DELETE => Ok(E::DeleteBucket),
                Method::GET => Err(not_implemented()),
                _ => Err(not_allowed()),
            }
        }
        (Some(_), Some(_)) => {
            if t.has("uploads") {
                return if *method == Method::POST {
                    Ok(E::CreateMultipartUpload)
                } else {
                    Err(not_allowed())
                };
            }
            if t.has("uploadId") {
                return match *method {
                    Method::PUT if t.has("partNumber") => Ok(E::UploadPart),
                    Method::PUT => Err(S3Error::invalid_argument(
                        "Part number must be an integer between 1 and 10000, inclusive",
                    )),
                    Method::GET => Ok(E::ListParts),
                    Method::POST => Ok(E::CompleteMultipartUpload),
                    Method::DELETE => Ok(E::AbortMultipartUpload),
                    _ => Err(not_allowed()),
                };
            }
            if BUCKET_SUBRESOURCES.iter().any(|s| t.has(s)) {
                return Err(not_implemented());
            }
            match *method {
                Method::PUT => Ok(E::PutObject),
                Method::GET | Method::HEAD => Ok(E::GetObject),
                Method::DELETE => Ok(E::DeleteObject),
                _ => Err(not_allowed()),
            }
        }
    }
}

/// Per-request context from the HTTP layer.
pub(crate) struct Ctx<'a> {
    pub(crate) shutdown: &'a ShutdownSignal,
}

impl S3 {
    pub(crate) fn new(spec: S3Spec, clock: Arc<SimClock>) -> Self {
        let now = clock.now();
        let mut st = State::default();
        let mut faults = HashMap::new();
        for b in &spec.buckets {
            let mut bucket = Bucket::new(&b.name, b.created.unwrap_or(now));
            bucket.lifecycle = b.lifecycle.clone();
            st.buckets.insert(b.name.clone(), bucket);
            faults.insert(b.name.clone(), Arc::new(FaultSet::default()));
            for u in &b.uploads {
                st.seed(&b.name, u.clone());
            }
        }
        Self {
            spec,
            clock,
            state: Mutex::new(st),
            faults: FaultSet::default(),
            bucket_faults: Mutex::new(faults),
        }
    }

    fn settled(&self) -> (MutexGuard<'_, State>, OffsetDateTime) {
        let now = self.clock.now();
        let mut st = lock(&self.state);
        st.settle(now);
        (st, now)
    }

    fn take_fault(&self, bucket: Option<&str>, e: S3Endpoint) -> (Option<FaultKind>, bool) {
        let set = bucket.and_then(|b| lock(&self.bucket_faults).get(b).cloned());
        let reflects = set.as_ref().map_or_else(
            || self.faults.next_reflects(e),
            |s| s.next_reflects(e) || self.faults.next_reflects(e),
        );
        let fault = set.and_then(|s| s.take(e)).or_else(|| self.faults.take(e));
        (fault, reflects)
    }

    /// Serves one request.
    pub(crate) async fn serve(
        &self,
        req: Request<Incoming>,
        ctx: &Ctx<'_>,
    ) -> Result<HttpResponse, Aborted> {
        let rid = wire::request_id();
        // `path()` also of an absolute-form target (`GET http://host/...`,
        // as a client sends through an HTTP proxy).
        let path = req.uri().path().to_owned();
        let raw_query = req.uri().query().unwrap_or("").to_owned();
        let by_host = self.spec.domain.as_deref().and_then(|d| {
            // RFC 9112 §3.2.2: the authority of an absolute-form target
            // wins over `Host` (clients send both alike; `Host` is signed).
            let host = match req.uri().authority() {
                Some(a) => Some(a.host()),
                None => req.headers().get(HOST).and_then(|h| h.to_str().ok()),
            };
            host.and_then(|h| host_bucket(h, d))
        });
        if by_host.is_some() {
            lock(&self.state).virtual_hosted += 1;
        }
        let target = match parse_target(&path, &raw_query, by_host) {
            Ok(t) => t,
            Err(e) => return Ok(e.reply(&rid).into_response(&rid)),
        };
        let op = match operation(req.method(), &target) {
            Ok(op) => op,
            Err(mut e) => {
                e.resource = target.resource();
                return Ok(e.reply(&rid).into_response(&rid));
            }
        };
        *lock(&self.state).counts.entry(op).or_default() += 1;
        let (fault, reflects) = self.take_fault(target.bucket.as_deref(), op);
        let echo = reflects.then(|| self.reflection(&req));
        let head = *req.method() == Method::HEAD;
        let work = async {
            let resource = target.resource();
            match self.handle(op, &target, &path, &raw_query, req).await {
                Ok(r) => r,
                Err(mut e) => {
                    e.resource = resource;
                    e.reply(&rid)
                }
            }
        };
        let mut reply = apply_fault(fault, work, ctx.shutdown, echo, &rid).await?;
        if head {
            reply.head = true;
        }
        Ok(reply.into_response(&rid))
    }

    /// What a [`FaultKind::ReflectRequest`] echoes here: first, as a hostile
    /// store could, the secret access key of the key id the request names
    /// (it never travels, but the simulator knows it) and the session
    /// token; then the request as [`faults::reflection`] writes it.
    fn reflection(&self, req: &Request<Incoming>) -> String {
        let mut out = String::new();
        let user = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(sigv4::parse_authorization)
            .and_then(|a| {
                self.spec
                    .users
                    .iter()
                    .find(|u| u.access_key_id == a.access_key_id)
            });
        if let Some(u) = user {
            out.push_str(&format!("secret access key: {}\n", u.secret_access_key));
        }
        if let Some(t) = req.headers().get("x-amz-security-token") {
            out.push_str(&format!(
                "x-amz-security-token: {}\n",
                String::from_utf8_lossy(t.as_bytes())
            ));
        }
        out.push_str(&faults::reflection(
            req.method(),
            req.uri(),
            req.headers(),
            b"",
        ));
        out
    }

    /// Authenticates the request (see the module docs); the user's index.
    fn authenticate(
        &self,
        method: &Method,
        raw_path: &str,
        raw_query: &str,
        headers: &HeaderMap,
    ) -> Result<usize, S3Error> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Err(S3Error::access_denied());
        };
        let malformed = |m: &str| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "AuthorizationHeaderMalformed",
                m.to_owned(),
            )
        };
        let value = value
            .to_str()
            .map_err(|_| malformed("The authorization header is malformed."))?;
        if !value.trim_start().starts_with("AWS4-HMAC-SHA256") {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "Unsupported Authorization Type",
            ));
        }
        let auth = sigv4::parse_authorization(value)
            .ok_or_else(|| malformed("The authorization header is malformed."))?;
        if auth.service != "s3" {
            return Err(malformed("The authorization header is malformed; incorrect service. This endpoint belongs to \"s3\"."));
        }
        if auth.region != self.spec.region {
            return Err(malformed(&format!(
                "The authorization header is malformed; the region '{}' is wrong; expecting '{}'",
                auth.region, self.spec.region
            ))
            .with("Region", self.spec.region.clone()));
        }
        let Some(idx) = self
            .spec
            .users
            .iter()
            .position(|u| u.access_key_id == auth.access_key_id)
        else {
            return Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
            .with("AWSAccessKeyId", auth.access_key_id.clone()));
        };
        let user = &self.spec.users[idx];
        let token = headers
            .get("x-amz-security-token")
            .and_then(|v| v.to_str().ok());
        if let Some(want) = &user.session_token {
            if token != Some(want.as_str()) {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidToken",
                    "The provided token is malformed or otherwise invalid.",
                ));
            }
            if lock(&self.state)
                .expired_tokens
                .contains(&user.access_key_id)
            {
                return Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "ExpiredToken",
                    "The provided token has expired.",
                ));
            }
        } else if token.is_some() {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "The provided token is malformed or otherwise invalid.",
            ));
        }
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(signed_at) = sigv4::parse_amz_date(amz_date) else {
            return Err(S3Error::access_denied()
                .with_message("AWS authentication requires a valid Date or x-amz-date header"));
        };
        let real_now = OffsetDateTime::now_utc();
        if (signed_at - real_now).abs() > MAX_SKEW {
            return Err(S3Error::new(
                StatusCode::FORBIDDEN,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
            .with("RequestTime", amz_date)
            .with("ServerTime", wire::format_ts(real_now))
            .with("MaxAllowedSkewMilliseconds", "900000"));
        }
        if !amz_date.starts_with(&auth.date) {
            return Err(malformed("The authorization header is malformed; the credential date does not match x-amz-date."));
        }
        let Some(payload_hash) = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(S3Error::invalid_request(
                "Missing required header for this request: x-amz-content-sha256",
            ));
        };
        if !auth.signed_headers.iter().any(|h| h == "host") {
            return Err(S3Error::access_denied().with_message("SignedHeaders must include host"));
        }
        let sig_mismatch = |sts: &str, cr: &str| {
            S3Error::new(
                StatusCode::FORBIDDEN,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            )
            .with("AWSAccessKeyId", auth.access_key_id.clone())
            .with("StringToSign", sts)
            .with("CanonicalRequest", cr)
        };
        let Some(cr) = sigv4::canonical_request(
            method.as_str(),
            raw_path,
            raw_query,
            headers,
            &auth.signed_headers,
            payload_hash,
        ) else {
            return Err(sig_mismatch("", ""));
        };
        let scope = format!(
            "{}/{}/{}/aws4_request",
            auth.date, auth.region, auth.service
        );
        let sts = sigv4::string_to_sign(amz_date, &scope, &cr);
        let expected = sigv4::signature(
            &user.secret_access_key,
            &auth.date,
            &auth.region,
            &auth.service,
            &sts,
        );
        if !sigv4::constant_time_eq(&expected, &auth.signature) {
            return Err(sig_mismatch(&sts, &cr));
        }
        Ok(idx)
    }

    async fn handle(
        &self,
        op: S3Endpoint,
        t: &Target,
        raw_path: &str,
        raw_query: &str,
        req: Request<Incoming>,
    ) -> Result<Reply, S3Error> {
        use S3Endpoint as E;
        let user = self.authenticate(req.method(), raw_path, raw_query, req.headers())?;
        let payload = payload_check(req.headers())?;
        let bucket = t.bucket.as_deref().unwrap_or("");
        let key = t.key.as_deref().unwrap_or("");
        match op {
            E::ListBuckets => Ok(self.list_buckets()),
            E::CreateBucket => {
                read_xml_body(req, &payload, true).await?;
                self.create_bucket(bucket)
            }
            E::HeadBucket => {
                self.with_bucket(bucket, |_| Ok(()))?;
                Ok(Reply::empty(StatusCode::OK)
                    .with_header("x-amz-bucket-region", self.spec.region.clone()))
            }
            E::DeleteBucket => self.delete_bucket(bucket),
            E::ListMultipartUploads => self.list_uploads(bucket, t),
            E::GetLifecycle => self.get_lifecycle(bucket),
            E::PutLifecycle => {
                self.with_bucket(bucket, |_| Ok(()))?;
                let body = read_xml_body(req, &payload, false).await?;
                let doc = std::str::from_utf8(&body)
                    .ok()
                    .and_then(wire::parse)
                    .ok_or_else(S3Error::malformed_xml)?;
                let rules = storage::parse_lifecycle(&doc)?;
                self.with_bucket(bucket, |b| {
                    b.lifecycle = Some(rules);
                    Ok(())
                })?;
                Ok(Reply::empty(StatusCode::OK))
            }
            E::DeleteLifecycle => self.with_bucket(bucket, |b| {
                b.lifecycle = None;
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            }),
            E::CreateMultipartUpload => self.create_upload(bucket, key, user),
            E::UploadPart => self.upload_part(bucket, key, t, req, &payload).await,
            E::ListParts => self.list_parts(bucket, key, t),
            E::CompleteMultipartUpload => {
                let id = t.param("uploadId").unwrap_or("").to_owned();
                // The bucket and upload must exist before the body counts.
                self.with_bucket(bucket, |b| {
                    b.get(&id)
                        .filter(|u| u.key == key)
                        .map(|_| ())
                        .ok_or_else(|| S3Error::no_such_upload(&id))
                })?;
                let body = read_xml_body(req, &payload, false).await?;
                self.complete(bucket, key, &id, &body)
            }
            E::AbortMultipartUpload => {
                let id = t.param("uploadId").unwrap_or("");
                self.with_bucket(bucket, |b| match b.get(id) {
                    Some(u) if u.key == key => {
                        b.remove(id);
                        Ok(Reply::empty(StatusCode::NO_CONTENT))
                    }
                    _ => Err(S3Error::no_such_upload(id)),
                })
            }
            E::PutObject => {
                self.with_bucket(bucket, |_| Ok(()))?;
                let (size, md5) = read_part_body(req, &payload).await?;
                let etag = format!("\"{md5}\"");
                let now = self.clock.now();
                self.with_bucket(bucket, |b| {
                    b.put_object(
                        key,
                        Object {
                            size,
                            etag: etag.clone(),
                            last_modified: now,
                        },
                    );
                    Ok(())
                })?;
                Ok(Reply::empty(StatusCode::OK).with_header("etag", etag))
            }
            E::GetObject => self.with_bucket(bucket, |b| {
                let o = b
                    .objects
                    .get(key)
                    .ok_or_else(|| S3Error::no_such_key(key))?;
                let len = usize::try_from(o.size).unwrap_or(usize::MAX);
                let mut r = Reply::raw(StatusCode::OK, "binary/octet-stream", Bytes::new());
                // No bytes are kept: the body is `x`s of the right length.
                r.generated = Some(if len == 0 {
                    SimBody::whole(Bytes::new())
                } else {
                    SimBody::padded("x", "", len, false)
                });
                r.headers.push(("content-length", o.size.to_string()));
                r.headers.push(("etag", o.etag.clone()));
                r.headers
                    .push(("last-modified", wire::http_date(o.last_modified)));
                r.headers.push(("accept-ranges", "bytes".to_owned()));
                Ok(r)
            }),
            E::DeleteObject => self.with_bucket(bucket, |b| {
                b.objects.remove(key);
                Ok(Reply::empty(StatusCode::NO_CONTENT))
            }),
        }
    }

    fn with_bucket<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Bucket) -> Result<T, S3Error>,
    ) -> Result<T, S3Error> {
        let (mut st, _) = self.settled();
        let b = st
            .buckets
            .get_mut(name)
            .ok_or_else(|| S3Error::no_such_bucket(name))?;
        f(b)
    }

    fn owner_xml(&self, x: &mut Xml, name: &str, who: &S3Identity) {
        x.open(name);
        x.leaf("ID", &who.id);
        if !who.display_name.is_empty() {
            x.leaf("DisplayName", &who.display_name);
        }
        x.close(name);
    }

    fn list_buckets(&self) -> Reply {
        let (st, _) = self.settled();
        let mut x = Xml::new();
        x.root("ListAllMyBucketsResult");
        x.open("Buckets");
        for b in st.buckets.values() {
            x.open("Bucket");
            x.leaf("Name", &b.name);
            x.leaf("CreationDate", &wire::format_ts(b.created));
            x.close("Bucket");
        }
        x.close("Buckets");
        self.owner_xml(&mut x, "Owner", &self.spec.owner);
        x.close("ListAllMyBucketsResult");
        Reply::xml(x.finish())
    }

    fn create_bucket(&self, name: &str) -> Result<Reply, S3Error> {
        if !valid_bucket_name(name) {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidBucketName",
                "The specified bucket is not valid.",
            )
            .with("BucketName", name));
        }
        let (mut st, now) = self.settled();
        if st.buckets.contains_key(name) {
            return Err(S3Error::new(
                StatusCode::CONFLICT,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            )
            .with("BucketName", name));
        }
        if st.buckets.len() >= MAX_BUCKETS {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "TooManyBuckets",
                "You have attempted to create more buckets than allowed",
            ));
        }
        st.buckets.insert(name.to_owned(), Bucket::new(name, now));
        lock(&self.bucket_faults)
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(FaultSet::default()));
        Ok(Reply::empty(StatusCode::OK).with_header("location", format!("/{name}")))
    }

    fn delete_bucket(&self, name: &str) -> Result<Reply, S3Error> {
        let (mut st, _) = self.settled();
        let b = st
            .buckets
            .get(name)
            .ok_or_else(|| S3Error::no_such_bucket(name))?;
        if !b.objects.is_empty() || !b.uploads.is_empty() {
            return Err(S3Error::new(
                StatusCode::CONFLICT,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty",
            )
            .with("BucketName", name));
        }
        st.buckets.remove(name);
        Ok(Reply::empty(StatusCode::NO_CONTENT))
    }

    fn list_uploads(&self, bucket: &str, t: &Target) -> Result<Reply, S3Error> {
        let max = limit_param(t.param("max-uploads"), "max-uploads")?;
        let url = match t.param("encoding-type") {
            None => false,
            Some("url") => true,
            Some(_) => {
                return Err(S3Error::invalid_argument(
                    "Invalid Encoding Method specified in Request",
                ))
            }
        };
        let enc = |s: &str| {
            if url {
                sigv4::uri_encode(s.as_bytes(), true)
            } else {
                s.to_owned()
            }
        };
        let prefix = t.param("prefix").unwrap_or("");
        let key_marker = t.param("key-marker").filter(|s| !s.is_empty());
        let id_marker = t.param("upload-id-marker").filter(|s| !s.is_empty());
        self.with_bucket(bucket, |b| {
            let (page, more) = b.page(prefix, key_marker, id_marker, max);
            let mut x = Xml::new();
            x.root("ListMultipartUploadsResult");
            x.leaf("Bucket", &b.name);
            x.leaf("KeyMarker", &enc(t.param("key-marker").unwrap_or("")));
            x.leaf("UploadIdMarker", t.param("upload-id-marker").unwrap_or(""));
            let last = page.last();
            x.leaf("NextKeyMarker", &enc(last.map_or("", |u| u.key.as_str())));
            x.leaf("NextUploadIdMarker", last.map_or("", |u| u.id.as_str()));
            if !prefix.is_empty() || t.has("prefix") {
                x.leaf("Prefix", &enc(prefix));
            }
            if let Some(d) = t.param("delimiter") {
                x.leaf("Delimiter", &enc(d));
            }
            if url {
                x.leaf("EncodingType", "url");
            }
            x.leaf("MaxUploads", &max.to_string());
            x.leaf("IsTruncated", if more { "true" } else { "false" });
            for u in page {
                x.open("Upload");
                x.leaf("Key", &enc(&u.key));
                x.leaf("UploadId", &u.id);
                self.owner_xml(&mut x, "Initiator", &u.initiator);
                self.owner_xml(&mut x, "Owner", &self.spec.owner);
                x.leaf("StorageClass", &u.storage_class);
                x.leaf("Initiated", &wire::format_ts(u.initiated));
                x.close("Upload");
            }
            x.close("ListMultipartUploadsResult");
            Ok(Reply::xml(x.finish()))
        })
    }

    fn get_lifecycle(&self, bucket: &str) -> Result<Reply, S3Error> {
        self.with_bucket(bucket, |b| match &b.lifecycle {
            None => Err(S3Error::new(
                StatusCode::NOT_FOUND,
                "NoSuchLifecycleConfiguration",
                "The lifecycle configuration does not exist",
            )
            .with("BucketName", bucket)),
            Some(rules) => {
                let mut x = Xml::new();
                storage::render_lifecycle(&mut x, rules);
                Ok(Reply::xml(x.finish()))
            }
        })
    }

    fn create_upload(&self, bucket: &str, key: &str, user: usize) -> Result<Reply, S3Error> {
        let (mut st, now) = self.settled();
        let b = st
            .buckets
            .get(bucket)
            .ok_or_else(|| S3Error::no_such_bucket(bucket))?;
        if b.uploads.len() >= MAX_UPLOADS_PER_BUCKET {
            return Err(S3Error::invalid_request(format!(
                "The simulator holds at most {MAX_UPLOADS_PER_BUCKET} open uploads per bucket"
            )));
        }
        let id = st.next_id(now);
        let initiator = self
            .spec
            .users
            .get(user)
            .map_or_else(|| self.spec.owner.clone(), |u| u.identity.clone());
        let b = st
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| S3Error::no_such_bucket(bucket))?;
        b.insert(Upload {
            id: id.clone(),
            key: key.to_owned(),
            initiator,
            storage_class: "STANDARD".to_owned(),
            initiated: now,
            parts: BTreeMap::new(),
        });
        let mut x = Xml::new();
        x.root("InitiateMultipartUploadResult");
        x.leaf("Bucket", bucket);
        x.leaf("Key", key);
        x.leaf("UploadId", &id);
        x.close("InitiateMultipartUploadResult");
        Ok(Reply::xml(x.finish()))
    }

    async fn upload_part(
        &self,
        bucket: &str,
        key: &str,
        t: &Target,
        req: Request<Incoming>,
        payload: &Payload,
    ) -> Result<Reply, S3Error> {
        let id = t.param("uploadId").unwrap_or("").to_owned();
        let number = t
            .param("partNumber")
            .and_then(|n| n.parse::<u32>().ok())
            .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
            .ok_or_else(|| {
                S3Error::invalid_argument(
                    "Part number must be an integer between 1 and 10000, inclusive",
                )
                .with("ArgumentName", "partNumber")
            })?;
        self.with_bucket(bucket, |b| {
            let full = b.parts_held >= MAX_PARTS_PER_BUCKET;
            let u = b
                .get(&id)
                .filter(|u| u.key == key)
                .ok_or_else(|| S3Error::no_such_upload(&id))?;
            if full && !u.parts.contains_key(&number) {
                return Err(S3Error::invalid_request(format!(
                    "The simulator holds at most {MAX_PARTS_PER_BUCKET} parts per bucket"
                )));
            }
            Ok(())
        })?;
        let (size, md5) = read_part_body(req, payload).await?;
        let now = self.clock.now();
        self.with_bucket(bucket, |b| {
            let u = b
                .get_mut(&id)
                .filter(|u| u.key == key)
                .ok_or_else(|| S3Error::no_such_upload(&id))?;
            let added = u
                .parts
                .insert(
                    number,
                    Part {
                        size,
                        md5: md5.clone(),
                        last_modified: now,
                    },
                )
                .is_none();
            if added {
                b.parts_held += 1;
            }
            Ok(())
        })?;
        Ok(Reply::empty(StatusCode::OK).with_header("etag", format!("\"{md5}\"")))
    }

    fn list_parts(&self, bucket: &str, key: &str, t: &Target) -> Result<Reply, S3Error> {
        let id = t.param("uploadId").unwrap_or("");
        let max = limit_param(t.param("max-parts"), "max-parts")?;
        let marker = match t.param("part-number-marker") {
            None | Some("") => 0,
            Some(m) => m.parse::<u32>().map_err(|_| {
                S3Error::invalid_argument(
                    "Provided part-number-marker not an integer or within integer range",
                )
                .with("ArgumentName", "part-number-marker")
            })?,
        };
        self.with_bucket(bucket, |b| {
            let u = b
                .get(id)
                .filter(|u| u.key == key)
                .ok_or_else(|| S3Error::no_such_upload(id))?;
            let mut after = u.parts.range(marker.saturating_add(1)..);
            let page: Vec<(&u32, &Part)> = if marker == u32::MAX {
                Vec::new()
            } else {
                after.by_ref().take(max).collect()
            };
            let more = marker != u32::MAX && after.next().is_some();
            let mut x = Xml::new();
            x.root("ListPartsResult");
            x.leaf("Bucket", bucket);
            x.leaf("Key", key);
            x.leaf("UploadId", id);
            x.leaf("PartNumberMarker", &marker.to_string());
            x.leaf(
                "NextPartNumberMarker",
                &page.last().map_or(0, |(n, _)| **n).to_string(),
            );
            x.leaf("MaxParts", &max.to_string());
            x.leaf("IsTruncated", if more { "true" } else { "false" });
            for (n, p) in &page {
                x.open("Part");
                x.leaf("PartNumber", &n.to_string());
                x.leaf("LastModified", &wire::format_ts(p.last_modified));
                x.leaf("ETag", &format!("\"{}\"", p.md5));
                x.leaf("Size", &p.size.to_string());
                x.close("Part");
            }
            self.owner_xml(&mut x, "Initiator", &u.initiator);
            self.owner_xml(&mut x, "Owner", &self.spec.owner);
            x.leaf("StorageClass", &u.storage_class);
            x.close("ListPartsResult");
            Ok(Reply::xml(x.finish()))
        })
    }

    fn complete(&self, bucket: &str, key: &str, id: &str, body: &[u8]) -> Result<Reply, S3Error> {
        let doc = std::str::from_utf8(body)
            .ok()
            .and_then(wire::parse)
            .filter(|d| d.name == "CompleteMultipartUpload")
            .ok_or_else(S3Error::malformed_xml)?;
        let mut listed: Vec<(u32, String)> = Vec::new();
        for p in doc.all("Part") {
            let n = p
                .text_of("PartNumber")
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(S3Error::malformed_xml)?;
            let etag = p.text_of("ETag").ok_or_else(S3Error::malformed_xml)?;
            listed.push((n, etag.trim_matches('"').to_ascii_lowercase()));
        }
        if listed.is_empty() {
            return Err(S3Error::malformed_xml());
        }
        if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPartOrder",
                "The list of parts was not in ascending order. Parts must be ordered by part number.",
            )
            .with("UploadId", id));
        }
        let now = self.clock.now();
        self.with_bucket(bucket, |b| {
            let u = b
                .get(id)
                .filter(|u| u.key == key)
                .ok_or_else(|| S3Error::no_such_upload(id))?;
            let mut md5s = Vec::with_capacity(listed.len());
            let mut size = 0u64;
            for (n, etag) in &listed {
                match u.parts.get(n) {
                    Some(p) if p.md5 == *etag => {
                        md5s.push(p.md5.as_str());
                        size = size.saturating_add(p.size);
                    }
                    _ => {
                        return Err(S3Error::new(
                            StatusCode::BAD_REQUEST,
                            "InvalidPart",
                            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
                        )
                        .with("UploadId", id)
                        .with("PartNumber", n.to_string()))
                    }
                }
            }
            let etag = storage::multipart_etag(&md5s);
            b.remove(id);
            b.put_object(
                key,
                Object {
                    size,
                    etag: etag.clone(),
                    last_modified: now,
                },
            );
            let mut x = Xml::new();
            x.root("CompleteMultipartUploadResult");
            x.leaf("Location", &format!("/{bucket}/{}", sigv4::uri_encode(key.as_bytes(), true)));
            x.leaf("Bucket", bucket);
            x.leaf("Key", key);
            x.leaf("ETag", &etag);
            x.close("CompleteMultipartUploadResult");
            Ok(Reply::xml(x.finish()))
        })
    }

    // ------------------------------------------------------------ control

    fn control_bucket<T>(&self, bucket: &str, f: impl FnOnce(&mut Bucket) -> T) -> Option<T> {
        let (mut st, _) = self.settled();
        st.buckets.get_mut(bucket).map(f)
    }

    fn view(u: &Upload) -> S3UploadView {
        S3UploadView {
            id: u.id.clone(),
            key: u.key.clone(),
            initiator: u.initiator.clone(),
            initiated: u.initiated,
            parts: u.parts.iter().map(|(n, p)| (*n, p.size)).collect(),
        }
    }
}

/// Applies a fault, or runs `work`.
async fn apply_fault(
    fault: Option<FaultKind>,
    work: impl Future<Output = Reply>,
    shutdown: &ShutdownSignal,
    echo: Option<String>,
    rid: &str,
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
            Bytes::from_static(b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body><form method=\"post\"><input name=\"password\" type=\"password\"></form></body></html>\n"),
        ),
        Some(FaultKind::MalformedJson) => raw(
            StatusCode::OK,
            wire::XML,
            Bytes::from_static(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>b</Bucket><Upload><Key>a<</Upload>"),
        ),
        Some(FaultKind::Oversized { bytes }) => Ok(oversized(bytes, false)),
        Some(FaultKind::OversizedChunked { bytes }) => Ok(oversized(bytes, true)),
        Some(FaultKind::UnknownFields) => {
            let mut reply = work.await;
            if let Ok(text) = std::str::from_utf8(&reply.body) {
                const EXTRA: &str = "<SimUnknownElement><Nested a=\"1\">x</Nested><Empty/></SimUnknownElement><ChecksumAlgorithm>CRC64NVME</ChecksumAlgorithm>";
                let mut t = text
                    .replace("</Upload>", &format!("{EXTRA}</Upload>"))
                    .replace("</Part>", &format!("{EXTRA}</Part>"));
                if let Some(i) = t.rfind("</") {
                    t.insert_str(i, EXTRA);
                }
                reply.body = Bytes::from(t);
            }
            Ok(reply)
        }
        Some(FaultKind::OddRecords { records }) => {
            let mut reply = work.await;
            if let Ok(text) = std::str::from_utf8(&reply.body) {
                let extra: String = records
                    .iter()
                    .filter_map(|r| r.as_str())
                    .collect();
                let mut t = text.to_owned();
                if let Some(i) = t.rfind("</") {
                    t.insert_str(i, &extra);
                }
                reply.body = Bytes::from(t);
            }
            Ok(reply)
        }
        Some(FaultKind::VaultFailure {
            error_type,
            message,
        }) => Ok(S3Error::from_code(&error_type, &message).reply(rid)),
        Some(FaultKind::ReflectRequest { status }) => {
            let mut e = S3Error::access_denied();
            e.status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            e.message = format!("Invalid request: {}", echo.unwrap_or_default());
            Ok(e.reply(rid))
        }
        Some(FaultKind::TooManyRequests { retry_after }) => Ok(S3Error::slow_down(retry_after).reply(rid)),
    }
}

/// A well-formed listing of exactly `bytes` bytes (when that is at least
/// its envelope), generated while it is sent.
fn oversized(bytes: usize, chunked: bool) -> Reply {
    const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>";
    const TAIL: &str = "</Bucket><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
    let mut r = Reply::raw(StatusCode::OK, wire::XML, Bytes::new());
    r.generated = Some(SimBody::padded(HEAD, TAIL, bytes, chunked));
    r
}

fn limit_param(v: Option<&str>, name: &'static str) -> Result<usize, S3Error> {
    match v {
        None => Ok(1000),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(usize::try_from(n).unwrap_or(1000)),
            _ => Err(S3Error::invalid_argument(format!(
                "Argument {name} must be an integer between 1 and 1000"
            ))
            .with("ArgumentName", name)
            .with("ArgumentValue", s)),
        },
    }
}

/// What `x-amz-content-sha256` asks to check.
#[derive(Debug)]
enum Payload {
    Unsigned,
    Sha256(String),
}

fn payload_check(headers: &HeaderMap) -> Result<Payload, S3Error> {
    let v = headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(sigv4::UNSIGNED_PAYLOAD);
    if v == sigv4::UNSIGNED_PAYLOAD {
        Ok(Payload::Unsigned)
    } else if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Payload::Sha256(v.to_ascii_lowercase()))
    } else if v.starts_with("STREAMING-") {
        Err(S3Error::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "Streaming (aws-chunked) payloads are not simulated; sign the payload or send UNSIGNED-PAYLOAD",
        ))
    } else {
        Err(S3Error::invalid_argument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a valid sha256 value.",
        ))
    }
}

fn sha_mismatch(want: &str, got: &str) -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
    .with("ClientComputedContentSHA256", want)
    .with("S3ComputedContentSHA256", got)
}

fn too_large() -> S3Error {
    S3Error::new(
        StatusCode::BAD_REQUEST,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size.",
    )
    .with("MaxSizeAllowed", MAX_PART_BYTES.to_string())
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Streams a part or object body: its size and hex MD5, the payload hash
/// checked. At most [`MAX_PART_BYTES`].
async fn read_part_body(
    req: Request<Incoming>,
    payload: &Payload,
) -> Result<(u64, String), S3Error> {
    if declared_length(req.headers()).is_some_and(|n| n > MAX_PART_BYTES) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut md5 = Md5::new();
    let mut sha = matches!(payload, Payload::Sha256(_)).then(Sha256::new);
    let mut size = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header",
            )
        })?;
        if let Ok(data) = frame.into_data() {
            size = size.saturating_add(data.len() as u64);
            if size > MAX_PART_BYTES {
                return Err(too_large());
            }
            md5.update(&data);
            if let Some(s) = sha.as_mut() {
                sha2::Digest::update(s, &data);
            }
        }
    }
    if let (Payload::Sha256(want), Some(s)) = (payload, sha) {
        let got = hex::encode(sha2::Digest::finalize(s));
        if *want != got {
            return Err(sha_mismatch(want, &got));
        }
    }
    Ok((size, hex::encode(md5.finalize())))
}

/// Reads a small XML body (at most 1 MiB), the payload hash checked;
/// `optional` bodies may be empty.
async fn read_xml_body(
    req: Request<Incoming>,
    payload: &Payload,
    optional: bool,
) -> Result<Bytes, S3Error> {
    if declared_length(req.headers()).is_some_and(|n| n > MAX_XML_BODY as u64) {
        return Err(S3Error::malformed_xml());
    }
    let body = http_body_util::Limited::new(req.into_body(), MAX_XML_BODY)
        .collect()
        .await
        .map_err(|_| S3Error::malformed_xml())?
        .to_bytes();
    if let Payload::Sha256(want) = payload {
        let got = sigv4::sha256_hex(&body);
        if *want != got {
            return Err(sha_mismatch(want, &got));
        }
    }
    if body.is_empty() && !optional {
        return Err(S3Error::malformed_xml());
    }
    Ok(body)
}

impl S3Error {
    fn with_message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }
}

// ------------------------------------------------------------------ control

/// Test and demo control of the S3 side. Changes take effect immediately.
#[derive(Debug, Clone)]
pub struct S3Control {
    pub(crate) inner: Arc<S3>,
}

impl S3Control {
    /// The configuration it started with.
    pub fn spec(&self) -> &S3Spec {
        &self.inner.spec
    }

    /// Current simulated time.
    pub fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    /// Bucket names, sorted.
    pub fn buckets(&self) -> Vec<String> {
        let (st, _) = self.inner.settled();
        st.buckets.keys().cloned().collect()
    }

    /// Creates a bucket as CreateBucket does; `false` if the name is taken,
    /// not a bucket name, or the bucket cap is reached.
    pub fn create_bucket(&self, name: &str) -> bool {
        self.inner.create_bucket(name).is_ok()
    }

    /// Deletes a bucket with whatever it holds (DeleteBucket refuses a
    /// bucket that is not empty); `false` if there is none.
    pub fn remove_bucket(&self, name: &str) -> bool {
        let (mut st, _) = self.inner.settled();
        st.buckets.remove(name).is_some()
    }

    /// Places an upload into a bucket (ignoring the caps); its id, or
    /// `None` for an unknown bucket or a part number out of 1..=10000. An
    /// upload with the same id is replaced.
    pub fn insert_upload(&self, bucket: &str, seed: S3UploadSeed) -> Option<String> {
        if seed
            .parts
            .iter()
            .any(|(n, _)| *n == 0 || *n > MAX_PART_NUMBER)
        {
            return None;
        }
        let (mut st, _) = self.inner.settled();
        st.seed(bucket, seed)
    }

    /// Adds (or replaces) a part of an open upload, last modified now;
    /// `false` if the bucket or upload is unknown or the number is out of
    /// range.
    pub fn put_part(&self, bucket: &str, upload_id: &str, number: u32, size: u64) -> bool {
        if number == 0 || number > MAX_PART_NUMBER {
            return false;
        }
        let now = self.now();
        self.inner
            .control_bucket(bucket, |b| {
                let Some(u) = b.get_mut(upload_id) else {
                    return false;
                };
                let md5 = hex::encode(Md5::digest(format!(
                    "{}/{upload_id}/{number}/{size}",
                    u.key
                )));
                let added = u
                    .parts
                    .insert(
                        number,
                        Part {
                            size,
                            md5,
                            last_modified: now,
                        },
                    )
                    .is_none();
                if added {
                    b.parts_held += 1;
                }
                true
            })
            .unwrap_or(false)
    }

    /// Removes an open upload, as completing or aborting it does; `false`
    /// if unknown.
    pub fn remove_upload(&self, bucket: &str, upload_id: &str) -> bool {
        self.inner
            .control_bucket(bucket, |b| b.remove(upload_id).is_some())
            .unwrap_or(false)
    }

    /// Completes an open upload with all its parts (as
    /// CompleteMultipartUpload would); `false` if unknown or without parts.
    pub fn complete_upload(&self, bucket: &str, upload_id: &str) -> bool {
        let now = self.now();
        self.inner
            .control_bucket(bucket, |b| {
                let Some(u) = b.get(upload_id) else {
                    return false;
                };
                if u.parts.is_empty() {
                    return false;
                }
                let md5s: Vec<&str> = u.parts.values().map(|p| p.md5.as_str()).collect();
                let etag = storage::multipart_etag(&md5s);
                let size = u.parts.values().map(|p| p.size).sum();
                let key = u.key.clone();
                b.remove(upload_id);
                b.put_object(
                    &key,
                    Object {
                        size,
                        etag,
                        last_modified: now,
                    },
                );
                true
            })
            .unwrap_or(false)
    }

    /// The open uploads of a bucket, in listing order (after lifecycle).
    pub fn uploads(&self, bucket: &str) -> Vec<S3UploadView> {
        self.inner
            .control_bucket(bucket, |b| b.uploads.values().map(S3::view).collect())
            .unwrap_or_default()
    }

    /// Sets (or with `None` removes) a bucket's lifecycle rules; `false`
    /// for an unknown bucket.
    pub fn set_lifecycle(&self, bucket: &str, rules: Option<Vec<LifecycleRule>>) -> bool {
        self.inner
            .control_bucket(bucket, |b| b.lifecycle = rules)
            .is_some()
    }

    /// How many uploads of a bucket lifecycle rules have aborted.
    pub fn lifecycle_aborted(&self, bucket: &str) -> u64 {
        self.inner
            .control_bucket(bucket, |b| b.lifecycle_aborted)
            .unwrap_or(0)
    }

    /// Marks the session token of the user with this access key id expired
    /// (400 `ExpiredToken` from then on) or valid again.
    pub fn set_token_expired(&self, access_key_id: &str, expired: bool) {
        let mut st = lock(&self.inner.state);
        st.expired_tokens.retain(|k| k != access_key_id);
        if expired {
            st.expired_tokens.push(access_key_id.to_owned());
        }
    }

    /// Arms a fault on one bucket's requests (`Some(bucket)`; `false` if
    /// unknown) or on every request (`None`).
    pub fn inject(&self, bucket: Option<&str>, rule: FaultRule<S3Endpoint>) -> bool {
        match bucket {
            None => {
                self.inner.faults.push(rule);
                true
            }
            Some(b) => match lock(&self.inner.bucket_faults).get(b) {
                Some(set) => {
                    set.push(rule);
                    true
                }
                None => false,
            },
        }
    }

    /// Disarms the faults of one bucket, or (`None`) every fault; how many
    /// were armed.
    pub fn clear_faults(&self, bucket: Option<&str>) -> usize {
        let sets = lock(&self.inner.bucket_faults);
        match bucket {
            Some(b) => sets.get(b).map_or(0, |s| s.clear()),
            None => self.inner.faults.clear() + sets.values().map(|s| s.clear()).sum::<usize>(),
        }
    }

    /// The armed faults: service-wide (`None`) and per bucket, in firing
    /// order.
    pub fn faults(&self) -> Vec<(Option<String>, Vec<FaultRule<S3Endpoint>>)> {
        let mut out = vec![(None, self.inner.faults.snapshot())];
        let sets = lock(&self.inner.bucket_faults);
        let mut names: Vec<&String> = sets.keys().collect();
        names.sort();
        for n in names {
            if let Some(s) = sets.get(n) {
                out.push((Some(n.clone()), s.snapshot()));
            }
        }
        out
    }

    /// Whether a bucket has a fault set (it exists or existed).
    pub(crate) fn knows_bucket(&self, bucket: &str) -> bool {
        lock(&self.inner.bucket_faults).contains_key(bucket)
    }

    /// Requests whose bucket the host named ([`S3Spec::domain`]), whatever
    /// their answer.
    pub fn virtual_hosted_requests(&self) -> u64 {
        lock(&self.inner.state).virtual_hosted
    }

    /// Requests received for `endpoint` (faulted ones included).
    pub fn request_count(&self, endpoint: S3Endpoint) -> u64 {
        lock(&self.inner.state)
            .counts
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }
}

/// The S3 listener's service.
#[derive(Debug)]
pub(crate) struct S3Server {
    pub(crate) s3: Arc<S3>,
    pub(crate) shutdown: ShutdownSignal,
    pub(crate) in_flight: Arc<InFlight>,
}

impl crate::http::Service for S3Server {
    async fn dispatch(&self, req: Request<Incoming>) -> Result<HttpResponse, Aborted> {
        let _counted = self.in_flight.enter();
        let ctx = Ctx {
            shutdown: &self.shutdown,
        };
        self.s3.serve(req, &ctx).await
    }

    fn shutdown_signal(&self) -> &ShutdownSignal {
        &self.shutdown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let op = |m: Method, p: &str, q: &str| operation(&m, &parse_target(p, q, None).unwrap());
        assert_eq!(op(Method::GET, "/", "").unwrap(), S3Endpoint::ListBuckets);
        assert_eq!(
            op(Method::GET, "/b", "uploads").unwrap(),
            S3Endpoint::ListMultipartUploads
        );
        assert_eq!(
            op(Method::GET, "/b/", "uploads&max-uploads=2").unwrap(),
            S3Endpoint::ListMultipartUploads
        );
        assert_eq!(
            op(Method::POST, "/b/k/x", "uploads").unwrap(),
            S3Endpoint::CreateMultipartUpload
        );
        assert_eq!(
            op(Method::PUT, "/b/k", "partNumber=1&uploadId=u").unwrap(),
            S3Endpoint::UploadPart
        );
        assert_eq!(
            op(Method::GET, "/b/k", "uploadId=u").unwrap(),
            S3Endpoint::ListParts
        );
        assert_eq!(
            op(Method::POST, "/b/k", "uploadId=u").unwrap(),
            S3Endpoint::CompleteMultipartUpload
        );
        assert_eq!(
            op(Method::DELETE, "/b/k", "uploadId=u").unwrap(),
            S3Endpoint::AbortMultipartUpload
        );
        assert_eq!(
            op(Method::PUT, "/b", "lifecycle").unwrap(),
            S3Endpoint::PutLifecycle
        );
        assert_eq!(op(Method::PUT, "/b", "").unwrap(), S3Endpoint::CreateBucket);
        assert_eq!(
            op(Method::GET, "/b", "").unwrap_err().code,
            "NotImplemented"
        );
        assert_eq!(
            op(Method::GET, "/b", "versioning").unwrap_err().code,
            "NotImplemented"
        );
        assert_eq!(
            op(Method::POST, "/", "").unwrap_err().code,
            "MethodNotAllowed"
        );
        let t = parse_target("/b/a%20b/c", "prefix=x%2Fy&k=a+b", None).unwrap();
        assert_eq!(t.key.as_deref(), Some("a b/c"));
        assert_eq!(t.param("prefix"), Some("x/y"));
        assert_eq!(t.param("k"), Some("a b"));
        assert!(parse_target("/b/%ff", "", None).is_err());
        // Virtual-hosted: the host named the bucket, the path is the key.
        let t = parse_target("/a%20b/c", "uploadId=u", Some("b".into())).unwrap();
        assert_eq!(
            (t.bucket.as_deref(), t.key.as_deref()),
            (Some("b"), Some("a b/c"))
        );
        assert_eq!(operation(&Method::GET, &t).unwrap(), S3Endpoint::ListParts);
        let t = parse_target("/", "uploads", Some("b".into())).unwrap();
        assert_eq!((t.bucket.as_deref(), t.key.as_deref()), (Some("b"), None));
        assert_eq!(
            operation(&Method::GET, &t).unwrap(),
            S3Endpoint::ListMultipartUploads
        );
    }

    #[test]
    fn buckets_named_by_the_host() {
        let d = "s3.sim.test";
        assert_eq!(host_bucket("up.s3.sim.test:9000", d).as_deref(), Some("up"));
        assert_eq!(host_bucket("Up.S3.Sim.Test", d).as_deref(), Some("up"));
        assert_eq!(host_bucket("a.b.s3.sim.test", d).as_deref(), Some("a.b"));
        for other in [
            "s3.sim.test:9000",
            "s3.sim.test",
            ".s3.sim.test",
            "ups3.sim.test",
            "up.s3.sim.test.evil",
            "127.0.0.1:9000",
            "[::1]:9000",
            "",
        ] {
            assert_eq!(host_bucket(other, d), None, "{other}");
        }
    }

    #[test]
    fn configurations() {
        assert!(validate(&S3Spec::demo()).is_ok());
        let mut s = S3Spec::new();
        s.buckets.push(S3BucketSpec::new("Bad_Name"));
        assert!(validate(&s).is_err());
        let mut s = S3Spec::new();
        s.users.push(S3User::demo());
        assert!(validate(&s).is_err());
        for (domain, ok) in [
            ("s3.sim.test", true),
            ("minio", true),
            ("", false),
            ("a..b", false),
            ("a_b.test", false),
            ("x.test:9000", false),
        ] {
            let mut s = S3Spec::new();
            s.domain = Some(domain.to_owned());
            assert_eq!(validate(&s).is_ok(), ok, "{domain:?}");
        }
        assert!(valid_bucket_name("my-bucket.1"));
        assert!(!valid_bucket_name("-x-"));
        assert!(!valid_bucket_name("ab"));
    }

    #[test]
    fn limits() {
        assert_eq!(limit_param(None, "max-uploads").unwrap(), 1000);
        assert_eq!(limit_param(Some("1"), "max-uploads").unwrap(), 1);
        for bad in ["0", "1001", "-1", "x", ""] {
            assert_eq!(
                limit_param(Some(bad), "max-uploads").unwrap_err().code,
                "InvalidArgument"
            );
        }
    }
}
