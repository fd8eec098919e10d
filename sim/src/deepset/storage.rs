//! The object storage behind upload sessions, shaped like S3's browser
//! POST: Create Upload Session hands out a presigned form (`key`, `policy`,
//! `x-amz-*`), clients POST it as `multipart/form-data` with a `file` part,
//! and the storage checks the policy and its signature.
//!
//! The signature stands in for SigV4: 64 hex digits like the real one, but a
//! keyed MD5 of the base64 policy that only this simulator can make or
//! check. No bytes are kept: the file part is streamed and counted.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::StatusCode;
use md5::{Digest, Md5};
use serde::Serialize;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::wire::Reply;

/// Largest upload body accepted (the whole form).
pub const MAX_UPLOAD_BYTES: u64 = 100 * 1024 * 1024;
/// Largest non-file form field.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most form fields before the file.
const MAX_FIELDS: usize = 64;
/// `x-amz-algorithm` of every form.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Access key id in `x-amz-credential` (made up, AWS-shaped).
const ACCESS_KEY_ID: &str = "AKIASIMULATEDDEEPSET";
const REGION: &str = "eu-central-1";
/// Placeholder S3 substitutes with the uploaded file's name.
const FILENAME_VAR: &str = "${filename}";

/// The bucket that holds a workspace's uploads.
pub(crate) fn bucket_name(workspace: &str) -> String {
    format!("deepset-sim-{workspace}")
}

/// `aws_prefixed_request_config.fields`, in boto3's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Fields {
    pub(crate) key: String,
    #[serde(rename = "x-amz-algorithm")]
    pub(crate) algorithm: String,
    #[serde(rename = "x-amz-credential")]
    pub(crate) credential: String,
    #[serde(rename = "x-amz-date")]
    pub(crate) date: String,
    pub(crate) policy: String,
    #[serde(rename = "x-amz-signature")]
    pub(crate) signature: String,
}

/// A presigned form for uploads into `{workspace}/{session_id}/`, valid
/// until `expires`.
pub(crate) fn presign(
    secret: &[u8; 16],
    workspace: &str,
    session_id: &str,
    now: OffsetDateTime,
    expires: OffsetDateTime,
) -> Fields {
    let now = now.to_offset(time::UtcOffset::UTC);
    let day = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let date = format!(
        "{day}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let credential = format!("{ACCESS_KEY_ID}/{day}/{REGION}/s3/aws4_request");
    let prefix = format!("{workspace}/{session_id}/");
    let policy = Policy {
        expiration: policy_time(expires),
        conditions: vec![
            json!({"bucket": bucket_name(workspace)}),
            json!(["starts-with", "$key", prefix]),
            json!({"x-amz-algorithm": ALGORITHM}),
            json!({"x-amz-credential": credential}),
            json!({"x-amz-date": date}),
        ],
    };
    let policy = B64.encode(super::wire::to_json(&policy));
    Fields {
        key: format!("{prefix}{FILENAME_VAR}"),
        algorithm: ALGORITHM.to_owned(),
        credential,
        date,
        signature: sign(secret, &policy),
        policy,
    }
}

/// A POST policy, in boto3's key order.
#[derive(Serialize)]
struct Policy {
    expiration: String,
    conditions: Vec<Value>,
}

/// `2025-03-15T09:26:53Z` (boto3's policy expiration format).
fn policy_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Keyed hash of the base64 policy: two domain-separated MD5s, 64 hex
/// digits.
fn sign(secret: &[u8; 16], policy: &str) -> String {
    [1u8, 2]
        .iter()
        .fold(String::with_capacity(64), |mut out, tag| {
            let mut h = Md5::new();
            h.update(secret);
            h.update([*tag]);
            h.update(policy.as_bytes());
            for b in h.finalize() {
                out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
                out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
            }
            out
        })
}

/// An S3 error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub(crate) struct S3Error {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl S3Error {
    pub(crate) fn denied(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "AccessDenied",
            message: message.into(),
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code,
            message: message.into(),
        }
    }

    /// 400 `TooManyFiles`: the session holds the simulator's maximum.
    pub(crate) fn too_many_files(max: usize) -> Self {
        Self::bad(
            "TooManyFiles",
            format!("The upload session already holds the maximum of {max} files."),
        )
    }

    pub(crate) fn not_found_bucket(bucket: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "NoSuchBucket",
            message: format!("The specified bucket does not exist: {bucket}"),
        }
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "MethodNotAllowed",
            message: "The specified method is not allowed against this resource.".to_owned(),
        }
    }

    /// The XML body S3 sends.
    pub(crate) fn reply(&self) -> Reply {
        let request_id = format!("{:016X}", rand::random::<u64>());
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{request_id}</RequestId><HostId>{}</HostId></Error>",
            self.code,
            xml_escape(&self.message),
            B64.encode(request_id.as_bytes()),
        );
        Reply::raw(self.status, "application/xml", Bytes::from(body))
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// A received form: the fields before the file (names lower-cased, as S3
/// matches them case-insensitively) and the file's name and size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Form {
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) file: Option<(String, u64)>,
}

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a `multipart/form-data` POST to the end, streaming the file part
/// (counted, not kept). As on S3, fields after the file are ignored.
pub(crate) async fn read_form(headers: &HeaderMap, body: Incoming) -> Result<Form, S3Error> {
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| S3Error {
        status: StatusCode::PRECONDITION_FAILED,
        code: "PreconditionFailed",
        message: "Bucket POST must be of the enclosure-type multipart/form-data".to_owned(),
    })?;
    let limits = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(MAX_UPLOAD_BYTES)
            .per_field(MAX_UPLOAD_BYTES),
    );
    let mut parts = multer::Multipart::with_constraints(body.into_data_stream(), boundary, limits);
    let mut form = Form::default();
    while let Some(mut field) = parts.next_field().await.map_err(form_error)? {
        let name = field.name().unwrap_or("").to_ascii_lowercase();
        if form.file.is_some() {
            while field.chunk().await.map_err(form_error)?.is_some() {}
            continue;
        }
        if name == "file" {
            let file_name = field.file_name().unwrap_or("").to_owned();
            let mut size = 0u64;
            while let Some(chunk) = field.chunk().await.map_err(form_error)? {
                size = size.saturating_add(chunk.len() as u64);
            }
            form.file = Some((file_name, size));
            continue;
        }
        let mut value = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(form_error)? {
            if value.len() + chunk.len() > MAX_FIELD_BYTES {
                return Err(S3Error::bad(
                    "MaxPostPreDataLengthExceeded",
                    "Your POST request fields preceding the upload file were too large.",
                ));
            }
            value.extend_from_slice(&chunk);
        }
        if form.fields.len() >= MAX_FIELDS {
            return Err(S3Error::bad(
                "InvalidArgument",
                "Too many form fields before the file.",
            ));
        }
        form.fields
            .push((name, String::from_utf8_lossy(&value).into_owned()));
    }
    Ok(form)
}

fn form_error(e: multer::Error) -> S3Error {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            S3Error::bad(
                "EntityTooLarge",
                format!(
                    "Your proposed upload exceeds the maximum allowed size of {MAX_UPLOAD_BYTES} bytes"
                ),
            )
        }
        _ => S3Error::bad(
            "MalformedPOSTRequest",
            "The body of your POST request is not well-formed multipart/form-data.",
        ),
    }
}

/// What a verified form asks to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    pub(crate) session_id: String,
    /// The object key below the session's prefix.
    pub(crate) name: String,
    pub(crate) size: u64,
}

/// Checks a form against its signed policy, as S3 does: the signature, the
/// expiration, every condition, and that no field is unaccounted for.
pub(crate) fn verify(
    secret: &[u8; 16],
    workspace: &str,
    form: &Form,
    now: OffsetDateTime,
) -> Result<Verified, S3Error> {
    let (file_name, size) = form.file.clone().ok_or_else(|| {
        S3Error::bad(
            "InvalidArgument",
            "POST requires exactly one file upload per request.",
        )
    })?;
    let policy_b64 = form
        .get("policy")
        .ok_or_else(|| S3Error::denied("Access Denied"))?;
    let signature = form.get("x-amz-signature").ok_or_else(|| {
        S3Error::denied("Bucket POST must contain a field named 'x-amz-signature'.")
    })?;
    if !signature.eq_ignore_ascii_case(&sign(secret, policy_b64)) {
        return Err(S3Error::denied(
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    // Signed by us, so well-formed; still, never trust input.
    let policy: Value = B64
        .decode(policy_b64)
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok())
        .ok_or_else(|| S3Error::denied("Invalid Policy: Invalid JSON."))?;
    let expiration = policy["expiration"]
        .as_str()
        .and_then(|s| OffsetDateTime::parse(s, &Rfc3339).ok())
        .ok_or_else(|| S3Error::denied("Invalid Policy: Invalid 'expiration' value."))?;
    if now >= expiration {
        return Err(S3Error::denied(
            "Invalid according to Policy: Policy expired.",
        ));
    }
    let key = form
        .get("key")
        .ok_or_else(|| {
            S3Error::bad(
                "InvalidArgument",
                "Bucket POST must contain a field named 'key'.",
            )
        })?
        .replace(FILENAME_VAR, &file_name);
    let field = |name: &str| -> Option<String> {
        match name {
            "key" => Some(key.clone()),
            "bucket" => Some(bucket_name(workspace)),
            other => form.get(other).map(str::to_owned),
        }
    };
    let mut covered = vec!["policy", "x-amz-signature", "file"];
    let mut prefix = None;
    let conditions = policy["conditions"].as_array().cloned().unwrap_or_default();
    for cond in &conditions {
        let failed = || {
            S3Error::denied(format!(
                "Invalid according to Policy: Policy Condition failed: {cond}"
            ))
        };
        match cond {
            Value::Object(m) => {
                for (name, want) in m {
                    let name = name.to_ascii_lowercase();
                    if field(&name).as_deref() != want.as_str() {
                        return Err(failed());
                    }
                    if let Some(known) = form.fields.iter().find(|(k, _)| *k == name) {
                        covered.push(known.0.as_str());
                    }
                }
            }
            Value::Array(a) => {
                let (op, var, want) = (a.first(), a.get(1), a.get(2));
                let name = var
                    .and_then(Value::as_str)
                    .and_then(|v| v.strip_prefix('$'))
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(failed)?;
                let want = want.and_then(Value::as_str).ok_or_else(failed)?;
                let have = field(&name).ok_or_else(failed)?;
                let ok = match op.and_then(Value::as_str) {
                    Some("starts-with") => have.starts_with(want),
                    Some("eq") => have == want,
                    _ => false,
                };
                if !ok {
                    return Err(failed());
                }
                if name == "key" {
                    prefix = Some(want.to_owned());
                }
                if let Some(known) = form.fields.iter().find(|(k, _)| *k == name) {
                    covered.push(known.0.as_str());
                }
            }
            _ => return Err(failed()),
        }
    }
    if let Some((extra, _)) = form
        .fields
        .iter()
        .find(|(k, _)| !k.starts_with("x-ignore-") && !covered.contains(&k.as_str()))
    {
        return Err(S3Error::denied(format!(
            "Invalid according to Policy: Extra input fields: {extra}"
        )));
    }
    // The signed key prefix names the session: `{workspace}/{session}/`.
    let prefix = prefix.ok_or_else(|| S3Error::denied("Access Denied"))?;
    let session_id = prefix
        .strip_prefix(&format!("{workspace}/"))
        .and_then(|rest| rest.strip_suffix('/'))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .ok_or_else(|| S3Error::denied("Access Denied"))?
        .to_owned();
    let name = key.get(prefix.len()..).unwrap_or("").to_owned();
    if name.is_empty() {
        return Err(S3Error::bad(
            "InvalidArgument",
            "The object key names no file below the session's prefix.",
        ));
    }
    Ok(Verified {
        session_id,
        name,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: [u8; 16] = [9; 16];
    const SID: &str = "0f8b8a5e-4a47-4c3e-8f4a-2b7d1f2e3c4d";

    fn form_of(f: &Fields, file: (&str, u64)) -> Form {
        Form {
            fields: vec![
                ("key".into(), f.key.clone()),
                ("x-amz-algorithm".into(), f.algorithm.clone()),
                ("x-amz-credential".into(), f.credential.clone()),
                ("x-amz-date".into(), f.date.clone()),
                ("policy".into(), f.policy.clone()),
                ("x-amz-signature".into(), f.signature.clone()),
            ],
            file: Some((file.0.into(), file.1)),
        }
    }

    #[test]
    fn presigned_fields_look_like_boto3s() {
        let now = datetime!(2025-03-14 09:26:53.5 UTC);
        let f = presign(
            &SECRET,
            "default",
            SID,
            now,
            datetime!(2025-03-15 09:26:53.5 UTC),
        );
        assert_eq!(f.key, format!("default/{SID}/${{filename}}"));
        assert_eq!(f.algorithm, "AWS4-HMAC-SHA256");
        assert_eq!(
            f.credential,
            "AKIASIMULATEDDEEPSET/20250314/eu-central-1/s3/aws4_request"
        );
        assert_eq!(f.date, "20250314T092653Z");
        assert_eq!(f.signature.len(), 64);
        let raw = B64.decode(&f.policy).unwrap_or_default();
        assert!(raw.starts_with(br#"{"expiration":"2025-03-15T09:26:53Z","conditions":[{"bucket":"deepset-sim-default"},"#));
        let policy: Value =
            serde_json::from_slice(&B64.decode(&f.policy).unwrap_or_default()).unwrap_or_default();
        assert_eq!(policy["expiration"], "2025-03-15T09:26:53Z");
        assert_eq!(
            policy["conditions"][1],
            json!(["starts-with", "$key", format!("default/{SID}/")])
        );
    }

    #[test]
    fn verification() {
        let now = datetime!(2025-03-14 09:26:53 UTC);
        let exp = datetime!(2025-03-14 10:00:00 UTC);
        let f = presign(&SECRET, "default", SID, now, exp);
        let form = form_of(&f, ("notes.txt", 12));
        assert_eq!(
            verify(&SECRET, "default", &form, now),
            Ok(Verified {
                session_id: SID.into(),
                name: "notes.txt".into(),
                size: 12
            })
        );
        // Other secret, other workspace, too late, tampered, extra field.
        assert_eq!(
            verify(&[1; 16], "default", &form, now).map_err(|e| e.code),
            Err("AccessDenied")
        );
        let e = verify(&SECRET, "other", &form, now).err();
        assert!(e.is_some_and(|e| e.message.contains("Condition failed")));
        let e = verify(&SECRET, "default", &form, exp).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("Invalid according to Policy: Policy expired.".into())
        );
        let mut bad = form.clone();
        bad.fields[0].1 = "default/other-session/x.txt".into();
        assert_eq!(
            verify(&SECRET, "default", &bad, now).map_err(|e| e.status),
            Err(StatusCode::FORBIDDEN)
        );
        let mut bad = form.clone();
        bad.fields.push(("acl".into(), "public-read".into()));
        let e = verify(&SECRET, "default", &bad, now).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("Invalid according to Policy: Extra input fields: acl".into())
        );
        let mut ignored = form.clone();
        ignored.fields.push(("x-ignore-me".into(), "1".into()));
        assert!(verify(&SECRET, "default", &ignored, now).is_ok());
        let mut nofile = form;
        nofile.file = None;
        assert_eq!(
            verify(&SECRET, "default", &nofile, now).map_err(|e| e.code),
            Err("InvalidArgument")
        );
    }

    #[test]
    fn error_xml() {
        let r = S3Error::denied("a < b").reply();
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let body = String::from_utf8_lossy(&r.body).into_owned();
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>a &lt; b</Message><RequestId>"), "{body}");
    }
}
