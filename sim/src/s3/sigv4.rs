//! AWS Signature Version 4 (header form), verified independently of any
//! client library: canonical request, string to sign, HMAC-SHA256 key
//! derivation, as the public SigV4 reference describes them for S3 (the
//! path is not normalized and not encoded twice).

use hmac::{Hmac, Mac};
use hyper::header::HeaderMap;
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

type HmacSha256 = Hmac<Sha256>;

/// The only algorithm S3 takes in the header form.
pub(crate) const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// `x-amz-content-sha256` of requests whose body is not signed.
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) access_key_id: String,
    /// `yyyymmdd` of the credential scope.
    pub(crate) date: String,
    pub(crate) region: String,
    pub(crate) service: String,
    /// Lower-case names, as listed (`;`-separated in the header).
    pub(crate) signed_headers: Vec<String>,
    /// 64 lower-case hex digits, as sent.
    pub(crate) signature: String,
}

/// Parses the header value; `None` if it is not a well-formed SigV4
/// header (S3 answers `AuthorizationHeaderMalformed` or `AccessDenied`).
pub(crate) fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.trim().strip_prefix(ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => return None,
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [key, date, region, service, terminator] = scope.as_slice() else {
        return None;
    };
    if *terminator != "aws4_request" || key.is_empty() {
        return None;
    }
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_ascii_lowercase).collect();
    if signed_headers.iter().any(String::is_empty) {
        return None;
    }
    let signature = signature?.to_owned();
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(Authorization {
        access_key_id: (*key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Parses `x-amz-date` (`20130524T000000Z`).
pub(crate) fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = Date::from_calendar_date(
        i32::try_from(num(0..4)?).ok()?,
        month,
        u8::try_from(num(6..8)?).ok()?,
    )
    .ok()?;
    let t = Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    Some(PrimitiveDateTime::new(date, t).assume_utc())
}

/// RFC 3986 encoding as SigV4 wants it: everything but `A-Z a-z 0-9 - _ .
/// ~` is `%XX` (upper-case hex); `/` too unless `keep_slash`.
pub(crate) fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (a malformed escape stays as it is); `+` stays a
/// plus, as S3 reads it.
pub(crate) fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| char::from(c).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical URI: the path decoded once and encoded again (so that
/// clients that encode more or fewer characters sign the same thing), `/`
/// kept.
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    if raw_path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(&percent_decode(raw_path), true)
}

/// The canonical query string: every `name=value` pair (a bare `name`
/// gets an empty value) decoded, encoded again, sorted by name then value.
pub(crate) fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                uri_encode(&percent_decode(k), false),
                uri_encode(&percent_decode(v), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// A header's canonical value: every value of the header, trimmed, inner
/// runs of spaces made one, joined with `,`; `None` if the header is absent.
fn canonical_header_value(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// The canonical request; `None` if a signed header is missing.
pub(crate) fn canonical_request(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &HeaderMap,
    signed_headers: &[String],
    payload_hash: &str,
) -> Option<String> {
    let mut canon_headers = String::new();
    for name in signed_headers {
        let value = canonical_header_value(headers, name)?;
        canon_headers.push_str(name);
        canon_headers.push(':');
        canon_headers.push_str(&value);
        canon_headers.push('\n');
    }
    Some(format!(
        "{method}\n{}\n{}\n{canon_headers}\n{}\n{payload_hash}",
        canonical_uri(raw_path),
        canonical_query(raw_query),
        signed_headers.join(";"),
    ))
}

/// The string to sign.
pub(crate) fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// The signature of `string_to_sign` with the key derived from `secret`
/// for `date` (`yyyymmdd`), `region` and `service`.
pub(crate) fn signature(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
    string_to_sign: &str,
) -> String {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    hex::encode(hmac(&k_signing, string_to_sign.as_bytes()))
}

/// Compares two strings in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Hex SHA-256 of `data`.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    /// The worked example "GET Object" of the SigV4 for S3 reference
    /// (example credentials from the public docs).
    #[test]
    fn matches_the_reference_get_object_example() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        h.insert("range", HeaderValue::from_static("bytes=0-9"));
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        );
        h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        let signed: Vec<String> = ["host", "range", "x-amz-content-sha256", "x-amz-date"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let cr = canonical_request(
            "GET",
            "/test.txt",
            "",
            &h,
            &signed,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )
        .unwrap();
        let sts = string_to_sign(
            "20130524T000000Z",
            "20130524/us-east-1/s3/aws4_request",
            &cr,
        );
        assert_eq!(
            sts.lines().last().unwrap(),
            "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
        assert_eq!(
            signature(secret, "20130524", "us-east-1", "s3", &sts),
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    /// The reference's "GET Bucket Lifecycle" and "Get Bucket (List
    /// Objects)" examples: bare query names and sorted query strings.
    #[test]
    fn matches_the_reference_query_examples() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let mut h = HeaderMap::new();
        h.insert(
            "host",
            HeaderValue::from_static("examplebucket.s3.amazonaws.com"),
        );
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static(
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
        );
        h.insert("x-amz-date", HeaderValue::from_static("20130524T000000Z"));
        let signed: Vec<String> = ["host", "x-amz-content-sha256", "x-amz-date"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let sign = |query: &str| {
            let cr = canonical_request(
                "GET",
                "/",
                query,
                &h,
                &signed,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            )
            .unwrap();
            let sts = string_to_sign(
                "20130524T000000Z",
                "20130524/us-east-1/s3/aws4_request",
                &cr,
            );
            signature(secret, "20130524", "us-east-1", "s3", &sts)
        };
        assert_eq!(
            sign("lifecycle"),
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        );
        assert_eq!(
            sign("prefix=J&max-keys=2"),
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        );
    }

    #[test]
    fn parses_headers_and_dates() {
        let a = parse_authorization(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
        )
        .unwrap();
        assert_eq!(a.access_key_id, "AKIDEXAMPLE");
        assert_eq!(a.date, "20150830");
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(parse_authorization("AWS4-HMAC-SHA256 Credential=x").is_none());
        assert!(parse_authorization("Bearer x").is_none());
        assert!(parse_authorization(
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=zz"
        )
        .is_none());
        assert_eq!(
            parse_amz_date("20150830T123600Z").unwrap(),
            time::macros::datetime!(2015-08-30 12:36:00 UTC)
        );
        assert!(parse_amz_date("20151330T123600Z").is_none());
        assert!(parse_amz_date("2015083ÿT12360Z").is_none());
    }

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(canonical_uri("/b/a%20b/c~d"), "/b/a%20b/c~d");
        assert_eq!(canonical_uri("/b/a b+c"), "/b/a%20b%2Bc");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(
            canonical_query("uploads&prefix=a%2Fb&max-uploads=2"),
            "max-uploads=2&prefix=a%2Fb&uploads="
        );
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
