//! `kind = "s3"`: incomplete multipart uploads of S3-compatible object
//! stores (AWS S3, MinIO, Ceph RGW, Cloudflare R2, the GCS XML API), one
//! target per bucket (`target="<name>:<bucket>"`).
//!
//! - [`client`]: SigV4-signed calls (aws-sigv4; credentials from the key
//!   pair or the standard AWS chain of aws-config), all pages;
//! - [`wire`]: the XML it reads (quick-xml);
//! - [`lifecycle`]: which `AbortIncompleteMultipartUpload` rule covers a key,
//!   and when S3 aborts an upload;
//! - [`guard`]: the cost guard that bounds the billed `ListParts` calls;
//! - this module: the target keys and the [`Source`] the poller drives.

pub mod client;
pub mod guard;
pub mod lifecycle;
pub mod wire;

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::{self, StreamExt};
use serde::de::IgnoredAny;
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use crate::kinds::{Discover, Kind, Source};
use crate::metrics::text::Value;
use crate::metrics::Family;
use crate::model::{parse_timestamp, Measure, Session, SessionState, UnixMillis};
use crate::secret::Secret;
use crate::settings::{struct_fields, KindConfig, KindInput, SecretKeys, TargetConfig};
use crate::upstream::{FetchError, RequestLimiter};

pub use client::{endpoint, S3Client};
use guard::{Figures, Guard, Policy};
use lifecycle::AbortRule;

/// Region of a store that is not AWS, when none is given.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default `dormant_refresh`.
pub const DEFAULT_DORMANT_REFRESH: Duration = Duration::from_secs(3600);
/// Default `max_list_parts_per_poll`.
pub const DEFAULT_MAX_LIST_PARTS: usize = 1000;
/// How often the lifecycle configuration is read again.
pub const LIFECYCLE_REFRESH: Duration = Duration::from_secs(3600);
/// `ListParts` calls of one bucket in flight at once.
pub const PARTS_AT_ONCE: usize = 8;

/// The S3 kind (registered in [`crate::kinds::KINDS`]).
pub struct S3;

/// S3-specific target settings.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// Signing region.
    pub region: String,
    /// The buckets of the configured target.
    pub buckets: Vec<String>,
    /// The bucket of one published target (set when the target is expanded
    /// into one target per bucket).
    pub bucket: Option<String>,
    /// Only uploads whose key starts with this.
    pub prefix: String,
    /// `https://host/bucket/key` rather than `https://bucket.host/key`.
    pub path_style: bool,
    /// Key pair; `None`: the standard AWS credential chain.
    pub access_key_id: Option<Secret>,
    /// Key pair.
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
    /// Dormant uploads are listed again this often.
    pub dormant_refresh: Duration,
    /// At most this many `ListParts` calls per bucket per poll.
    pub max_list_parts_per_poll: usize,
}

/// The keys of an S3 target.
#[derive(Debug, Default, Deserialize)]
struct RawS3 {
    region: Option<String>,
    buckets: Option<Vec<String>>,
    prefix: Option<String>,
    path_style: Option<bool>,
    access_key_id_env: Option<String>,
    access_key_id_file: Option<String>,
    secret_access_key_env: Option<String>,
    secret_access_key_file: Option<String>,
    session_token_env: Option<String>,
    session_token_file: Option<String>,
    dormant_refresh: Option<String>,
    max_list_parts_per_poll: Option<i64>,
    // Accepted only to refuse them with a precise message.
    access_key_id: Option<IgnoredAny>,
    secret_access_key: Option<IgnoredAny>,
    session_token: Option<IgnoredAny>,
}

impl Kind for S3 {
    fn name(&self) -> &'static str {
        "s3"
    }

    fn title(&self) -> &'static str {
        "S3"
    }

    fn measure(&self) -> Measure {
        Measure::Bytes
    }

    fn example_url(&self) -> &'static str {
        "https://s3.eu-west-1.amazonaws.com"
    }

    fn url_optional(&self) -> bool {
        true
    }

    fn keys(&self) -> &'static [&'static str] {
        struct_fields::<RawS3>()
    }

    fn parse(&self, input: &mut KindInput<'_>) -> Option<Box<dyn KindConfig>> {
        let t: RawS3 = input.keys()?;
        let aws = input.url().is_none();
        let region = match t.region.as_deref().map(str::trim) {
            Some(r) if valid_region(r) => r.to_string(),
            Some(r) => {
                input.problem(
                    "region",
                    format!("{r:?} is not a region; write it like \"eu-west-1\""),
                );
                String::new()
            }
            None if aws => {
                input.problem(
                    "region",
                    "missing; set the bucket's AWS region (e.g. \"eu-west-1\"), or set url \
                     to the endpoint of an S3-compatible store",
                );
                String::new()
            }
            None => DEFAULT_REGION.to_string(),
        };
        if aws && !region.is_empty() {
            match Url::parse(&format!("https://s3.{region}.amazonaws.com")) {
                Ok(u) => input.default_url(u),
                Err(_) => input.problem("region", format!("{region:?} is not a region")),
            }
        }
        // Omitted: every bucket ListBuckets returns, found at run time.
        let buckets = match t.buckets {
            Some(b) if b.is_empty() => {
                input.problem(
                    "buckets",
                    "is empty; list the buckets to watch, e.g. buckets = [\"uploads\"], or leave \
                     the key out to watch every bucket ListBuckets returns",
                );
                b
            }
            b => b.unwrap_or_default(),
        };
        let path_style = t.path_style.unwrap_or(!aws);
        let mut seen = BTreeSet::new();
        for b in &buckets {
            if valid_bucket(b) && !path_style && !host_label(b) {
                input.problem(
                    "buckets",
                    format!(
                        "{b:?} cannot be part of a host name (virtual-hosted style); set \
                         path_style = true"
                    ),
                );
            } else if !valid_bucket(b) {
                input.problem(
                    "buckets",
                    format!(
                        "{b:?} is not a bucket name; use 1 to 255 letters, digits, '.', '-' or '_'"
                    ),
                );
            } else if !seen.insert(b.as_str()) {
                input.problem("buckets", format!("{b:?} is listed twice"));
            }
        }
        let key_set = t.access_key_id_env.is_some() || t.access_key_id_file.is_some();
        let secret_set = t.secret_access_key_env.is_some() || t.secret_access_key_file.is_some();
        for (inline, name) in [
            (t.access_key_id.is_some(), "access_key_id"),
            (t.secret_access_key.is_some(), "secret_access_key"),
            (t.session_token.is_some(), "session_token"),
        ] {
            if inline {
                input.problem(
                    name,
                    format!(
                        "secrets may not be written in the configuration file; put it in an \
                         environment variable ({name}_env) or a file ({name}_file)"
                    ),
                );
            }
        }
        if key_set != secret_set {
            input.problem(
                if key_set {
                    "secret_access_key_env"
                } else {
                    "access_key_id_env"
                },
                "set both access_key_id_env (or _file) and secret_access_key_env (or _file), or \
                 neither to use the standard AWS credential chain",
            );
        }
        let secret = |input: &mut KindInput<'_>,
                      env: &Option<String>,
                      file: &Option<String>,
                      names: (&'static str, &'static str, &'static str)| {
            if env.is_none() && file.is_none() {
                return None;
            }
            input.secret(SecretKeys {
                inline: false,
                env: env.as_deref(),
                file: file.as_deref(),
                names,
            })
        };
        let access_key_id = secret(
            input,
            &t.access_key_id_env,
            &t.access_key_id_file,
            ("access_key_id", "access_key_id_env", "access_key_id_file"),
        );
        let secret_access_key = secret(
            input,
            &t.secret_access_key_env,
            &t.secret_access_key_file,
            (
                "secret_access_key",
                "secret_access_key_env",
                "secret_access_key_file",
            ),
        );
        let session_token = secret(
            input,
            &t.session_token_env,
            &t.session_token_file,
            ("session_token", "session_token_env", "session_token_file"),
        );
        let dormant_refresh = input
            .duration(
                &t.dormant_refresh,
                Duration::from_secs(60),
                "dormant_refresh",
            )
            .unwrap_or(DEFAULT_DORMANT_REFRESH);
        let max_list_parts_per_poll = match t.max_list_parts_per_poll {
            None => DEFAULT_MAX_LIST_PARTS,
            Some(n) if (1..=100_000).contains(&n) => n as usize,
            Some(n) => {
                input.problem(
                    "max_list_parts_per_poll",
                    format!("{n} is out of range; use a number from 1 to 100000"),
                );
                DEFAULT_MAX_LIST_PARTS
            }
        };
        Some(Box::new(S3Config {
            region,
            buckets,
            bucket: None,
            prefix: t.prefix.unwrap_or_default(),
            path_style,
            access_key_id,
            secret_access_key,
            session_token,
            dormant_refresh,
            max_list_parts_per_poll,
        }))
    }

    fn expand(&self, target: TargetConfig) -> Vec<TargetConfig> {
        match target.settings::<S3Config>() {
            // Without buckets the target itself stays: it finds them.
            Some(cfg) if !cfg.buckets.is_empty() => {
                let buckets = cfg.buckets.clone();
                per_bucket(&target, &buckets)
            }
            _ => vec![target],
        }
    }

    fn discovers(&self, target: &TargetConfig) -> bool {
        target
            .settings::<S3Config>()
            .is_some_and(|c| c.bucket.is_none() && c.buckets.is_empty())
    }

    fn discoverer(
        &self,
        target: &TargetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Box<dyn Discover>, FetchError> {
        let cfg = settings(target)?;
        if !self.discovers(target) {
            return Err(FetchError::Connect {
                endpoint: "poll",
                detail: format!("target {:?} names its buckets", target.name),
            });
        }
        Ok(Box::new(BucketFinder {
            client: S3Client::new(target, cfg, limiter)?,
            target: target.clone(),
            region: cfg.region.clone(),
            path_style: cfg.path_style,
            passed_over: BTreeSet::new(),
        }))
    }

    fn source(
        &self,
        target: &TargetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Box<dyn Source>, FetchError> {
        let cfg = settings(target)?;
        if cfg.bucket.is_none() {
            return Err(FetchError::Connect {
                endpoint: "poll",
                detail: format!(
                    "target {:?} names no bucket; its buckets are found at run time",
                    target.name
                ),
            });
        }
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Ok(Box::new(S3Source {
            client: S3Client::new(target, cfg, limiter)?,
            guard: Guard::default(),
            policy: Policy {
                stall_after_ms: ms(target.stall_after),
                dormant_refresh_ms: ms(cfg.dormant_refresh),
                max_per_poll: cfg.max_list_parts_per_poll,
            },
            prefix: cfg.prefix.clone(),
            rules: None,
            rules_read_at: None,
        }))
    }
}

fn settings(target: &TargetConfig) -> Result<&S3Config, FetchError> {
    target
        .settings::<S3Config>()
        .ok_or_else(|| FetchError::Connect {
            endpoint: "poll",
            detail: format!("target {:?} is not an S3 target", target.name),
        })
}

/// One target per bucket, named `<name>:<bucket>`. Each knows only its own
/// bucket, so that adding a bucket leaves the others' settings unchanged
/// (a reload or a discovery then restarts none of them).
fn per_bucket(target: &TargetConfig, buckets: &[String]) -> Vec<TargetConfig> {
    buckets
        .iter()
        .map(|b| {
            let mut one = target.clone();
            one.name = format!("{}:{b}", target.name);
            if let Some(c) = one.settings_mut::<S3Config>() {
                c.buckets = vec![b.clone()];
                c.bucket = Some(b.clone());
            }
            one
        })
        .collect()
}

/// Most buckets one target watches when it finds them itself; a store
/// that lists more (or a hostile one) must not start unbounded poll loops.
pub const MAX_FOUND_BUCKETS: usize = 1000;

/// Finds the buckets of a target without `buckets` (ListBuckets).
struct BucketFinder {
    client: S3Client,
    target: TargetConfig,
    region: String,
    path_style: bool,
    /// Buckets already reported as passed over (warned about once).
    passed_over: BTreeSet<String>,
}

impl Discover for BucketFinder {
    fn discover(&mut self) -> BoxFuture<'_, Result<Vec<TargetConfig>, FetchError>> {
        Box::pin(async move {
            let creds = self.client.credentials().await?;
            let listed = self.client.list_buckets(&creds).await?;
            let (names, passed_over) = watched(listed, &self.region, self.path_style);
            for (name, why) in passed_over {
                if self.passed_over.insert(name.clone()) {
                    tracing::warn!(
                        target = %self.target.name,
                        bucket = %name.chars().take(255).collect::<String>(),
                        "bucket not watched: {why}"
                    );
                }
            }
            Ok(per_bucket(&self.target, &names))
        })
    }

    fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.client.take_calls()
    }
}

/// Of the buckets ListBuckets returned (with their regions where the store
/// says them), those to watch, sorted and at most [`MAX_FOUND_BUCKETS`],
/// and those passed over with why. A bucket of another region would only
/// answer with a redirect or a signature error.
fn watched(
    listed: Vec<(String, Option<String>)>,
    region: &str,
    path_style: bool,
) -> (Vec<String>, Vec<(String, String)>) {
    let mut names = Vec::new();
    let mut passed_over = Vec::new();
    for (name, in_region) in listed {
        if !valid_bucket(&name) {
            passed_over.push((name, "its name is not a bucket name".to_string()));
        } else if !path_style && !host_label(&name) {
            passed_over.push((
                name,
                "its name cannot be part of a host name; set path_style = true to watch it"
                    .to_string(),
            ));
        } else if let Some(r) = in_region.filter(|r| !r.eq_ignore_ascii_case(region)) {
            passed_over.push((
                name,
                format!("it is in region {r:?}, not {region:?}; add a target for that region"),
            ));
        } else {
            names.push(name);
        }
    }
    names.sort();
    names.dedup();
    if names.len() > MAX_FOUND_BUCKETS {
        for name in names.split_off(MAX_FOUND_BUCKETS) {
            passed_over.push((
                name,
                format!(
                    "only the first {MAX_FOUND_BUCKETS} buckets by name are watched; list the \
                     buckets to watch in buckets"
                ),
            ));
        }
    }
    (names, passed_over)
}

impl KindConfig for S3Config {
    fn kind_name(&self) -> &'static str {
        S3.name()
    }

    fn measure(&self) -> Measure {
        S3.measure()
    }

    fn secrets(&self) -> Vec<&Secret> {
        client::secrets(self)
    }
}

/// One bucket's client, cost guard and cached lifecycle rules.
pub struct S3Source {
    client: S3Client,
    guard: Guard,
    policy: Policy,
    prefix: String,
    /// The abort rules; `None` while unknown (not read yet, or not readable).
    rules: Option<Vec<AbortRule>>,
    rules_read_at: Option<Instant>,
}

impl S3Source {
    /// Reads the lifecycle rules when they are an hour old. A failure (a
    /// missing s3:GetLifecycleConfiguration permission is common) is logged
    /// and leaves the expiry unknown; it never fails the poll.
    async fn refresh_rules(&mut self, creds: &aws_credential_types::Credentials) {
        if self
            .rules_read_at
            .is_some_and(|t| t.elapsed() < LIFECYCLE_REFRESH)
        {
            return;
        }
        self.rules_read_at = Some(Instant::now());
        match self.client.lifecycle(creds).await {
            Ok(Some(l)) => self.rules = Some(lifecycle::abort_rules(&l)),
            Ok(None) => self.rules = Some(Vec::new()),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "cannot read the bucket's lifecycle configuration; expiry of incomplete \
                     uploads is unknown until it can (retried in an hour)"
                );
            }
        }
    }
}

impl Source for S3Source {
    fn fetch(&mut self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<Session>, FetchError>> {
        Box::pin(async move {
            let creds = self.client.credentials().await?;
            self.refresh_rules(&creds).await;
            let uploads = self.client.list_uploads(&creds).await?;
            let ids: Vec<String> = uploads.iter().map(upload_key).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let plan = self.guard.plan(&refs, now, self.policy);
            let client = &self.client;
            let creds = &creds;
            let mut listed = stream::iter(plan.into_iter().filter_map(|i| {
                let u = &uploads[i];
                let (key, id) = (u.key.as_deref()?, u.upload_id.as_deref()?);
                Some(async move { (i, client.list_parts(creds, key, id).await) })
            }))
            .buffer_unordered(PARTS_AT_ONCE);
            while let Some((i, result)) = listed.next().await {
                match result {
                    Ok(parts) => self
                        .guard
                        .record(&ids[i], figures(&parts), now, self.policy),
                    // Completed or aborted since it was listed.
                    Err(FetchError::HttpStatus { status: 404, .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            drop(listed);
            let rules = self.rules.as_deref();
            Ok(uploads
                .iter()
                .zip(&ids)
                .filter_map(|(u, id)| to_model(u, self.guard.figures(id), rules))
                .collect())
        })
    }

    fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.client.take_calls()
    }

    fn gauges(&self) -> Vec<(Family, Value)> {
        // The rule that covers the whole prefix: an upload anywhere under it
        // is aborted after this long.
        match self
            .rules
            .as_deref()
            .and_then(|r| lifecycle::rule_for(r, &self.prefix))
        {
            Some(rule) => vec![(Family::AbortAfter, Value::U(u64::from(rule.days) * 86_400))],
            None => Vec::new(),
        }
    }
}

/// The guard's key of an upload: its key and id (ids are unique per key).
fn upload_key(u: &wire::Upload) -> String {
    format!(
        "{}\n{}",
        u.key.as_deref().unwrap_or(""),
        u.upload_id.as_deref().unwrap_or("")
    )
}

/// What a `ListParts` found.
pub fn figures(parts: &[wire::Part]) -> Figures {
    Figures {
        bytes: parts
            .iter()
            .filter_map(|p| wire::number(&p.size))
            .fold(0u64, u64::saturating_add),
        parts: parts.len() as u64,
        last_part: parts
            .iter()
            .filter_map(|p| p.last_modified.as_deref().and_then(parse_timestamp))
            .max(),
    }
}

/// An upload as the model: `None` without a key or id. Its figures are
/// those of its last `ListParts` (zero before the first); its expiry comes
/// from the abort rule that covers its key, where the rules are known.
pub fn to_model(
    u: &wire::Upload,
    figures: Option<Figures>,
    rules: Option<&[AbortRule]>,
) -> Option<Session> {
    let key = u.key.as_deref().filter(|k| !k.is_empty())?;
    let id = u.upload_id.as_deref().filter(|i| !i.is_empty())?;
    let initiator = u.initiator.as_ref().or(u.owner.as_ref());
    let created = u.initiated.as_deref().and_then(parse_timestamp);
    let f = figures.unwrap_or_default();
    Some(Session {
        id: id.to_string(),
        owner_id: initiator
            .and_then(|i| i.id.as_deref())
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .unwrap_or("unknown")
            .to_string(),
        owner_name: initiator
            .and_then(|i| i.display_name.as_deref())
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        path: Some(key.to_string()),
        state: SessionState::Active,
        size: None,
        uploaded: f.bytes,
        parts: f.parts,
        created,
        expires: rules
            .and_then(|r| lifecycle::rule_for(r, key))
            .zip(created)
            .map(|(r, c)| lifecycle::abort_at(c, r.days)),
        last_upload: f.last_part,
        files: None,
    })
}

/// `eu-west-1`, `us-east-1`, `auto` (R2): letters, digits and dashes.
fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 64 && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A bucket name that can stand before the host name (virtual-hosted
/// style): dot-separated labels of lower-case letters, digits and inner
/// dashes. The URL library would lower-case `Uploads`, and `_` is no host
/// character.
fn host_label(b: &str) -> bool {
    b.split('.').all(|l| {
        !l.is_empty()
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    })
}

/// Letters, digits, `.`, `-`, `_` (AWS allows fewer; other stores more).
fn valid_bucket(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 255
        && b.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(key: &str, id: &str, who: Option<(&str, Option<&str>)>) -> wire::Upload {
        wire::Upload {
            key: Some(key.into()),
            upload_id: Some(id.into()),
            initiator: who.map(|(i, n)| wire::Principal {
                id: Some(i.into()),
                display_name: n.map(str::to_string),
            }),
            owner: None,
            initiated: Some("2026-12-01T10:30:00.000Z".into()),
        }
    }

    #[test]
    fn an_upload_becomes_a_session() {
        let parts = vec![
            wire::Part {
                part_number: Some("1".into()),
                last_modified: Some("2026-12-01T10:31:00Z".into()),
                size: Some("5242880".into()),
            },
            wire::Part {
                part_number: Some("2".into()),
                last_modified: Some("2026-12-01T10:35:00Z".into()),
                size: Some("1000".into()),
            },
        ];
        let f = figures(&parts);
        assert_eq!((f.bytes, f.parts), (5_243_880, 2));
        assert_eq!(f.last_part, parse_timestamp("2026-12-01T10:35:00Z"));
        let rules = [
            AbortRule {
                prefix: "in/".into(),
                days: 1,
            },
            AbortRule {
                prefix: String::new(),
                days: 7,
            },
        ];
        let s = to_model(
            &upload(
                "in/a.bin",
                "u1",
                Some(("arn:aws:iam::1:user/a", Some("ann"))),
            ),
            Some(f),
            Some(&rules),
        )
        .unwrap();
        assert_eq!(s.id, "u1");
        assert_eq!(s.owner_id, "arn:aws:iam::1:user/a");
        assert_eq!(s.owner_name.as_deref(), Some("ann"));
        assert_eq!(s.path.as_deref(), Some("in/a.bin"));
        assert_eq!((s.uploaded, s.parts, s.size), (5_243_880, 2, None));
        assert_eq!(s.created, parse_timestamp("2026-12-01T10:30:00Z"));
        assert_eq!(s.expires, parse_timestamp("2026-12-03T00:00:00Z"));
        // No rule known: no expiry; no initiator: "unknown"; no figures: 0.
        let s = to_model(&upload("x", "u2", None), None, None).unwrap();
        assert_eq!(
            (s.owner_id.as_str(), s.expires, s.uploaded),
            ("unknown", None, 0)
        );
        assert_eq!(
            to_model(&upload("x", "u3", None), None, Some(&rules[1..]))
                .unwrap()
                .expires,
            parse_timestamp("2026-12-09T00:00:00Z")
        );
        assert!(to_model(&upload("", "u", None), None, None).is_none());
        assert!(to_model(&upload("k", "", None), None, None).is_none());
    }

    fn settings_with(buckets: &[&str]) -> S3Config {
        S3Config {
            region: DEFAULT_REGION.into(),
            buckets: buckets.iter().map(|b| b.to_string()).collect(),
            bucket: None,
            prefix: String::new(),
            path_style: true,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            dormant_refresh: DEFAULT_DORMANT_REFRESH,
            max_list_parts_per_poll: DEFAULT_MAX_LIST_PARTS,
        }
    }

    #[test]
    fn one_target_per_bucket_or_one_that_finds_them() {
        let url = Url::parse("http://127.0.0.1:9").unwrap();
        let limiter = RequestLimiter::default();
        let listed =
            TargetConfig::with_defaults("p", url.clone(), Box::new(settings_with(&["a", "b"])));
        assert!(!S3.discovers(&listed));
        let each = S3.expand(listed);
        let names: Vec<&str> = each.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["p:a", "p:b"]);
        for (t, b) in each.iter().zip(["a", "b"]) {
            let c = t.settings::<S3Config>().unwrap();
            // Each knows its own bucket only: adding one changes no other.
            assert_eq!(
                (c.bucket.as_deref(), &c.buckets[..]),
                (Some(b), &[b.to_string()][..])
            );
            assert!(!S3.discovers(t));
            assert!(S3.source(t, &limiter).is_ok());
            assert!(S3.discoverer(t, &limiter).is_err());
        }
        let finder = TargetConfig::with_defaults("p", url, Box::new(settings_with(&[])));
        assert!(S3.discovers(&finder));
        let same = S3.expand(finder.clone());
        assert_eq!(same.len(), 1);
        assert!(same[0] == finder);
        assert!(S3.discoverer(&finder, &limiter).is_ok());
        // A finder has no bucket to poll.
        assert!(S3.source(&finder, &limiter).is_err());
        assert_eq!(per_bucket(&finder, &["x".to_string()])[0].name, "p:x");
    }

    #[test]
    fn buckets_found_in_another_region_or_misnamed_are_passed_over() {
        let listed: Vec<(String, Option<String>)> = vec![
            ("b".to_string(), None),
            ("a".to_string(), Some("EU-west-1".to_string())),
            ("far".to_string(), Some("us-east-2".to_string())),
            ("a/b".to_string(), None),
            ("b".to_string(), None),
        ];
        let (names, over) = watched(listed.clone(), "eu-west-1", true);
        assert_eq!(names, ["a", "b"]);
        let over: Vec<&str> = over.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(over, ["far", "a/b"]);
        // Virtual-hosted: a name that cannot be a host label is passed over.
        let listed = vec![
            ("ok.name-1".to_string(), None),
            ("Upper".to_string(), None),
            ("under_score".to_string(), None),
            ("-dash".to_string(), None),
            ("a..b".to_string(), None),
        ];
        let (names, over) = watched(listed, "x", false);
        assert_eq!(names, ["ok.name-1"]);
        let over: Vec<&str> = over.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(over, ["Upper", "under_score", "-dash", "a..b"]);
        let many = (0..MAX_FOUND_BUCKETS + 5)
            .rev()
            .map(|i| (format!("b{i:05}"), None))
            .collect();
        let (names, over) = watched(many, "x", true);
        assert_eq!(names.len(), MAX_FOUND_BUCKETS);
        assert_eq!(names[0], "b00000");
        let over: Vec<&str> = over.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(over, ["b01000", "b01001", "b01002", "b01003", "b01004"]);
    }

    #[test]
    fn names_and_regions() {
        assert!(valid_region("eu-west-1") && valid_region("auto"));
        assert!(!valid_region("eu west") && !valid_region(""));
        assert!(valid_bucket("my.bucket-1_x"));
        assert!(!valid_bucket("a/b") && !valid_bucket(""));
    }
}
