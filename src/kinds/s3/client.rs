//! The S3 client of one bucket target: SigV4-signed GETs (aws-sigv4, with
//! credentials from the key pair configured or the standard AWS credential
//! chain of aws-config), every page of `ListMultipartUploads` and
//! `ListParts`, and `GetBucketLifecycleConfiguration`. S3's XML errors are
//! mapped onto the exporter's reasons; their messages are masked with the
//! target's secrets and cut before they enter an error.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use url::Url;

use super::wire::{self, Lifecycle, Part, Upload};
use super::S3Config;
use crate::secret::Secret;
use crate::settings::TargetConfig;
use crate::upstream::http::{self, header_u64};
use crate::upstream::redact::{Redactor, MESSAGE_CHARS, SNIPPET_CHARS};
use crate::upstream::{CallLog, FetchError, RequestLimiter};

/// Endpoint names, the `endpoint` label of `upload_session_api_requests_total`.
pub mod endpoint {
    /// `ListMultipartUploads` (one per page).
    pub const LIST_UPLOADS: &str = "list_multipart_uploads";
    /// `ListParts` (one per page).
    pub const LIST_PARTS: &str = "list_parts";
    /// `GetBucketLifecycleConfiguration`.
    pub const LIFECYCLE: &str = "get_bucket_lifecycle";
    /// `ListBuckets` (targets without `buckets`).
    pub const LIST_BUCKETS: &str = "list_buckets";
    /// Getting credentials from the AWS credential chain (not an S3 call).
    pub const CREDENTIALS: &str = "credentials";
}

/// Most pages of one listing: 10,000 parts (S3's limit) or 10 million
/// uploads at 1,000 per page; a store that never stops paging is cut off.
const MAX_PAGES: usize = 10_000;

/// Where the credentials come from.
enum Creds {
    /// The key pair of the configuration.
    Static(Credentials),
    /// The standard chain, built at first use (it is async).
    Chain(Option<SharedCredentialsProvider>),
}

/// The client of one bucket. Owned by the target's poll task.
pub struct S3Client {
    http: reqwest::Client,
    base: Url,
    cfg: S3Config,
    bucket: String,
    timeout: Duration,
    max_body: u64,
    limiter: RequestLimiter,
    /// A mutex because the parts of several uploads are listed at once.
    calls: std::sync::Mutex<CallLog>,
    creds: Creds,
    red: Redactor,
}

impl S3Client {
    /// A client for the target's bucket.
    pub fn new(
        target: &TargetConfig,
        cfg: &S3Config,
        limiter: &RequestLimiter,
    ) -> Result<Self, FetchError> {
        let creds = match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => Creds::Static(Credentials::new(
                id.expose(),
                secret.expose(),
                cfg.session_token.as_ref().map(|t| t.expose().to_string()),
                None,
                "upload_session_exporter configuration",
            )),
            _ => Creds::Chain(None),
        };
        let mut base = target.url.clone();
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        Ok(S3Client {
            http: limiter.client_for(target)?,
            base,
            cfg: cfg.clone(),
            bucket: cfg.bucket.clone().unwrap_or_default(),
            timeout: target.timeout,
            max_body: target.max_response_bytes,
            limiter: limiter.clone(),
            calls: std::sync::Mutex::default(),
            creds,
            red: Redactor::new(secrets(cfg)),
        })
    }

    /// Calls made since the last call of this method.
    pub fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.calls
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }

    /// Every incomplete upload under the target's prefix (all pages).
    pub async fn list_uploads(&self, creds: &Credentials) -> Result<Vec<Upload>, FetchError> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, String)> = vec![
                ("uploads", String::new()),
                ("encoding-type", "url".into()),
                ("max-uploads", "1000".into()),
            ];
            if !self.cfg.prefix.is_empty() {
                q.push(("prefix", self.cfg.prefix.clone()));
            }
            if let Some((key, id)) = &markers {
                q.push(("key-marker", key.clone()));
                q.push(("upload-id-marker", id.clone()));
            }
            let url = self.url(None, &q);
            let body = self
                .get(
                    endpoint::LIST_UPLOADS,
                    "ListMultipartUploadsResult",
                    url,
                    creds,
                )
                .await?;
            let page: wire::UploadsPage = self.decode(endpoint::LIST_UPLOADS, &body)?;
            let encoded = page
                .encoding_type
                .as_deref()
                .is_some_and(|e| e.eq_ignore_ascii_case("url"));
            let unescape = |s: Option<String>| s.map(|s| if encoded { url_decode(&s) } else { s });
            let truncated = wire::flag(&page.is_truncated);
            let next = (unescape(page.next_key_marker), page.next_upload_id_marker);
            for mut u in page.uploads {
                u.key = unescape(u.key.take());
                out.push(u);
            }
            if !truncated {
                return Ok(out);
            }
            match next {
                (Some(k), Some(id)) if markers.as_ref() != Some(&(k.clone(), id.clone())) => {
                    markers = Some((k, id));
                }
                // Truncated without markers that move: take what came
                // rather than loop.
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// Every part of one upload (all pages).
    pub async fn list_parts(
        &self,
        creds: &Credentials,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<Part>, FetchError> {
        let mut out = Vec::new();
        let mut marker: Option<u64> = None;
        for _ in 0..MAX_PAGES {
            let mut q: Vec<(&str, String)> = vec![
                ("uploadId", upload_id.to_string()),
                ("max-parts", "1000".into()),
            ];
            if let Some(m) = marker {
                q.push(("part-number-marker", m.to_string()));
            }
            let url = self.url(Some(key), &q);
            let body = self
                .get(endpoint::LIST_PARTS, "ListPartsResult", url, creds)
                .await?;
            let page: wire::PartsPage = self.decode(endpoint::LIST_PARTS, &body)?;
            let truncated = wire::flag(&page.is_truncated);
            let next = wire::number(&page.next_part_number_marker);
            out.extend(page.parts);
            match next {
                Some(n) if truncated && marker.is_none_or(|m| n > m) => marker = Some(n),
                _ => return Ok(out),
            }
        }
        Ok(out)
    }

    /// The buckets ListBuckets returns, with their regions where the store
    /// says them.
    pub async fn list_buckets(
        &self,
        creds: &Credentials,
    ) -> Result<Vec<(String, Option<String>)>, FetchError> {
        let mut url = self.base.clone();
        let path = format!("{}/", url.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        let body = self
            .get(endpoint::LIST_BUCKETS, "ListAllMyBucketsResult", url, creds)
            .await?;
        let list: wire::BucketList = self.decode(endpoint::LIST_BUCKETS, &body)?;
        Ok(list
            .buckets
            .map(|b| b.bucket)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| Some((b.name?, b.bucket_region)))
            .collect())
    }

    /// The bucket's lifecycle configuration; `None` when it has none.
    pub async fn lifecycle(&self, creds: &Credentials) -> Result<Option<Lifecycle>, FetchError> {
        let url = self.url(None, &[("lifecycle", String::new())]);
        match self
            .get(endpoint::LIFECYCLE, "LifecycleConfiguration", url, creds)
            .await
        {
            Ok(body) => self.decode(endpoint::LIFECYCLE, &body).map(Some),
            Err(FetchError::HttpStatus {
                status: 404,
                ref snippet,
                ..
            }) if snippet.contains("NoSuchLifecycleConfiguration") => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        body: &[u8],
    ) -> Result<T, FetchError> {
        wire::decode(body).map_err(|detail| FetchError::Decode { endpoint, detail })
    }

    /// The URL of the bucket (or of `key` in it) with this query.
    fn url(&self, key: Option<&str>, query: &[(&str, String)]) -> Url {
        let mut url = self.base.clone();
        let mut path = url.path().trim_end_matches('/').to_string();
        if self.cfg.path_style {
            path.push('/');
            path.push_str(&encode(&self.bucket, false));
        } else if let Some(host) = url.host_str().map(|h| format!("{}.{h}", self.bucket)) {
            // Virtual-hosted style; bucket names are valid host labels.
            let _ = url.set_host(Some(&host));
        }
        if let Some(k) = key {
            path.push('/');
            path.push_str(&encode(k, true));
        } else if !self.cfg.path_style {
            path.push('/');
        }
        url.set_path(&path);
        let q: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() && matches!(*k, "uploads" | "lifecycle") {
                    (*k).to_string()
                } else {
                    format!("{k}={}", encode(v, false))
                }
            })
            .collect();
        url.set_query(Some(&q.join("&")));
        url
    }

    /// Signs and sends a GET, returning the body of a 2xx answer whose
    /// document is a `<root>`.
    async fn get(
        &self,
        endpoint: &'static str,
        root: &'static str,
        url: Url,
        creds: &Credentials,
    ) -> Result<bytes::Bytes, FetchError> {
        let headers =
            sign_get(&url, creds, &self.cfg.region).map_err(|detail| FetchError::Auth {
                endpoint,
                detail: format!("cannot sign the request: {detail}"),
            })?;
        let mut req = self.http.get(url.as_str());
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let resp = self
            .limiter
            .send(req, endpoint, self.timeout, self.max_body, || {
                self.calls
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(endpoint)
            })
            .await?;
        if !resp.status.is_success() {
            return Err(self.error(endpoint, &resp));
        }
        // The root's name is not checked beyond this: stores differ (moto
        // answers ListParts with <ListPartsResponse>).
        match wire::root(&resp.body).as_deref() {
            // S3 documents errors sent with 200 for some calls; a proxy or
            // another store may send one for any.
            Some("Error") => Err(self.error(endpoint, &resp)),
            Some(_) => Ok(resp.body),
            None => Err(FetchError::Decode {
                endpoint,
                detail: format!("the answer is not an XML document (expected <{root}>)"),
            }),
        }
    }

    /// An S3 error answer as the exporter's error.
    fn error(&self, endpoint: &'static str, resp: &http::Response) -> FetchError {
        let status = resp.status.as_u16();
        let body: wire::ErrorBody = wire::decode(&resp.body).unwrap_or_default();
        let code = body
            .code
            .as_deref()
            .map(|c| self.red.text(c, 64))
            .unwrap_or_default();
        let message = body
            .message
            .as_deref()
            .map(|m| self.red.text(m, MESSAGE_CHARS))
            .unwrap_or_default();
        let what = if code.is_empty() {
            self.red.snippet(&resp.body, SNIPPET_CHARS)
        } else if message.is_empty() {
            code.clone()
        } else {
            format!("{code}: {message}")
        };
        match code.as_str() {
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "AccessDenied"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired" => FetchError::Auth {
                endpoint,
                detail: if self.bucket.is_empty() {
                    format!(
                        "{what} (HTTP {status}); check the key pair, or the permission \
                         s3:ListAllMyBuckets (needed when buckets is not set)"
                    )
                } else {
                    format!(
                        "{what} (HTTP {status}); check the key pair, or the permissions \
                         s3:ListBucketMultipartUploads, s3:ListMultipartUploadParts and \
                         s3:GetLifecycleConfiguration on bucket {:?}",
                        self.bucket
                    )
                },
            },
            "SlowDown" | "RequestLimitExceeded" | "Throttling" => FetchError::RateLimited {
                endpoint,
                retry_after: header_u64(&resp.headers, "retry-after").map(Duration::from_secs),
            },
            // Any other 503 or 429 (a proxy in front of the store, say).
            _ if status == 503 || status == 429 => FetchError::RateLimited {
                endpoint,
                retry_after: header_u64(&resp.headers, "retry-after").map(Duration::from_secs),
            },
            _ => FetchError::HttpStatus {
                endpoint,
                status,
                snippet: what,
            },
        }
    }

    /// The credentials to sign this poll's requests with (the chain
    /// caches and refreshes them itself).
    pub async fn credentials(&mut self) -> Result<Credentials, FetchError> {
        let slot = match &mut self.creds {
            Creds::Static(c) => return Ok(c.clone()),
            Creds::Chain(slot) => slot,
        };
        // aws-config reads profile and token files with blocking IO (see
        // aws-types' os_shim_internal): building and asking the chain runs
        // on a blocking thread, so a hung file system stalls this poll only.
        let runtime = tokio::runtime::Handle::current();
        let region = self.cfg.region.clone();
        let known = slot.clone();
        let asked = tokio::task::spawn_blocking(move || {
            runtime.block_on(async move {
                let provider = match known {
                    Some(p) => p,
                    None => chain(region).await?,
                };
                let creds = provider.provide_credentials().await;
                Ok::<_, String>((provider, creds))
            })
        })
        .await;
        let (provider, creds) = match asked {
            Ok(Ok(r)) => r,
            Ok(Err(why)) => return Err(no_credentials(&why)),
            Err(e) => return Err(no_credentials(&format!("the credential chain failed: {e}"))),
        };
        *slot = Some(provider);
        creds.map_err(|e| no_credentials(&self.red.text(&e.to_string(), MESSAGE_CHARS)))
    }
}

/// The standard AWS credential chain, its HTTPS client on rustls with ring.
async fn chain(region: String) -> Result<SharedCredentialsProvider, String> {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .http_client(https)
        .load()
        .await;
    conf.credentials_provider()
        .ok_or_else(|| "no credential provider is configured".to_string())
}

fn no_credentials(why: &str) -> FetchError {
    FetchError::Auth {
        endpoint: endpoint::CREDENTIALS,
        detail: format!(
            "no AWS credentials ({why}); set access_key_id_env and secret_access_key_env \
             (or *_file), or give the exporter credentials the standard AWS way \
             (environment, shared profile, web identity, ECS or EC2 instance role)"
        ),
    }
}

/// The headers that sign a GET of `url` (SigV4, service `s3`, the payload
/// hash of an empty body in `x-amz-content-sha256` as S3 requires).
fn sign_get(url: &Url, creds: &Credentials, region: &str) -> Result<Vec<(String, String)>, String> {
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    // S3 signs the path as sent, encoded once, not normalised.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// RFC 3986 encoding of everything but the unreserved characters (and `/`
/// in keys), as SigV4 and S3 expect.
fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes (keys of an `encoding-type=url` listing; `+` is a
/// space there, as in a form).
fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Secrets never shown: the secret key and the session token.
pub(super) fn secrets(cfg: &S3Config) -> Vec<&Secret> {
    cfg.secret_access_key
        .iter()
        .chain(cfg.session_token.iter())
        .chain(cfg.access_key_id.iter())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_markers_are_encoded_as_sigv4_wants() {
        assert_eq!(encode("a b+c/d~e", true), "a%20b%2Bc/d~e");
        assert_eq!(encode("a/b", false), "a%2Fb");
        assert_eq!(encode("é", false), "%C3%A9");
        assert_eq!(url_decode("a%20b+c%2Fd%C3%A9"), "a b c/dé");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz%4"), "%zz%4");
    }
}
