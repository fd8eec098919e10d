//! Vault's JSON, as serde types. Every field is optional and unknown fields are
//! ignored: Vault adds fields between versions, and one odd record must not
//! make a whole list undecodable (numbers that are negative, fractional or
//! strings decode as `None` and the record is judged later).
#![allow(non_snake_case)] // Vault field names such as `user_name__v`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

pub use crate::upstream::lenient::Lenient;
use crate::upstream::lenient::{lenient_u64, null_as_default};

/// The envelope of every Vault response. `data` is kept raw so that a
/// FAILURE is recognised even when its `data` has an unexpected shape.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// `SUCCESS`, `WARNING`, `FAILURE` or `EXCEPTION`.
    #[serde(rename = "responseStatus")]
    pub response_status: Option<String>,
    /// Free text some responses carry.
    #[serde(rename = "responseMessage")]
    pub response_message: Option<String>,
    /// Errors on FAILURE/EXCEPTION.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<ApiErrorItem>,
    /// Top-level error type some auth failures add.
    #[serde(rename = "errorType")]
    pub error_type: Option<String>,
    /// The payload, decoded by the caller.
    #[serde(borrow)]
    pub data: Option<&'a RawValue>,
    /// Pagination and other details.
    #[serde(rename = "responseDetails")]
    pub response_details: Option<ResponseDetails>,
}

/// One entry of `errors`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApiErrorItem {
    /// The error type, e.g. `INVALID_SESSION_ID`: what to decide on.
    #[serde(rename = "type")]
    pub error_type: Option<String>,
    /// Human text; never decided on.
    pub message: Option<String>,
}

/// `responseDetails` of a paginated response.
#[derive(Debug, Default, Deserialize)]
pub struct ResponseDetails {
    /// URL (absolute, or a path) of the next page.
    pub next_page: Option<String>,
}

/// The body of `POST /api/{version}/auth`.
#[derive(Debug, Deserialize)]
pub struct AuthResponse {
    /// `SUCCESS` or `FAILURE`.
    #[serde(rename = "responseStatus")]
    pub response_status: Option<String>,
    /// Errors on failure.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<ApiErrorItem>,
    /// Top-level error type of auth failures.
    #[serde(rename = "errorType")]
    pub error_type: Option<String>,
    /// The session id to send as `Authorization`.
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
    /// The user logged in.
    #[serde(rename = "userId", default, deserialize_with = "lenient_u64")]
    pub user_id: Option<u64>,
    /// The Vault the session belongs to.
    #[serde(rename = "vaultId", default, deserialize_with = "lenient_u64")]
    pub vault_id: Option<u64>,
    /// Every Vault the user may use.
    #[serde(rename = "vaultIds", default, deserialize_with = "null_as_default")]
    pub vault_ids: Vec<VaultRef>,
}

/// One entry of `vaultIds`.
#[derive(Debug, Clone, Deserialize)]
pub struct VaultRef {
    /// Vault id.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub id: Option<u64>,
    /// Vault name.
    pub name: Option<String>,
    /// Vault base URL.
    pub url: Option<String>,
}

/// The body of `GET /api/`: versions served and their URLs.
#[derive(Debug, Deserialize)]
pub struct VersionsResponse {
    /// `SUCCESS` or `FAILURE`.
    #[serde(rename = "responseStatus")]
    pub response_status: Option<String>,
    /// Version name to URL.
    #[serde(default, deserialize_with = "null_as_default")]
    pub values: BTreeMap<String, serde_json::Value>,
    /// Errors on failure.
    #[serde(default, deserialize_with = "null_as_default")]
    pub errors: Vec<ApiErrorItem>,
}

/// An upload session, as in List Upload Sessions (seed 000/001) and Get
/// Upload Session Details (seed 002).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct UploadSession {
    /// Session id (opaque).
    pub id: Option<String>,
    /// Path in File Staging, e.g. `/u10001400/x/file.pdf`.
    pub path: Option<String>,
    /// File name (create response only).
    pub name: Option<String>,
    /// Numeric user id of the creator.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub owner: Option<u64>,
    /// Declared size of the finished file in bytes.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: Option<u64>,
    /// Bytes uploaded so far.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uploaded: Option<u64>,
    /// Parts uploaded so far.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub uploaded_parts: Option<u64>,
    /// e.g. `2020-10-07T18:32:55.000Z`.
    pub created_date: Option<String>,
    /// When the session expires.
    pub expiration_date: Option<String>,
    /// When the last part arrived.
    pub last_uploaded_date: Option<String>,
}

/// One uploaded part (seed 003).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct FilePart {
    /// Part size in bytes.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: Option<u64>,
    /// Part number, 1-based.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub part_number: Option<u64>,
    /// Hex MD5 of the part.
    pub part_content_md5: Option<String>,
}

/// The body of Retrieve User (`GET /api/{version}/objects/users/{id}`).
#[derive(Debug, Deserialize)]
pub struct UsersResponse {
    /// The users found (one for a lookup by id).
    #[serde(default, deserialize_with = "null_as_default")]
    pub users: Vec<UserNode>,
}

/// One entry of `users`.
#[derive(Debug, Default, Deserialize)]
pub struct UserNode {
    /// The user record.
    #[serde(default)]
    pub user: Option<UserRecord>,
}

/// The fields of a user record the exporter uses.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
pub struct UserRecord {
    /// User id.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub id: Option<u64>,
    /// Login name.
    pub user_name__v: Option<String>,
    /// First name.
    pub user_first_name__v: Option<String>,
    /// Last name.
    pub user_last_name__v: Option<String>,
}

impl UserRecord {
    /// "First Last", or the login name, or nothing.
    pub fn display_name(&self) -> Option<String> {
        let first = self.user_first_name__v.as_deref().unwrap_or("").trim();
        let last = self.user_last_name__v.as_deref().unwrap_or("").trim();
        let full = format!("{first} {last}").trim().to_string();
        if !full.is_empty() {
            return Some(full);
        }
        self.user_name__v
            .as_deref()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_lists_decode_the_same_on_both_paths() {
        // One pass: every entry fits.
        let good = br#"[{"id":"a","size":3},{"id":"b","uploaded":"7"}]"#;
        let l = Lenient::<UploadSession>::from_slice(good).unwrap();
        assert_eq!(l.skipped, 0);
        assert_eq!(l.items.len(), 2);
        assert_eq!(l.items[1].uploaded, Some(7));
        // An odd entry: the entry-by-entry path skips just that one.
        let odd = br#"[{"id":"a","size":3},"nonsense",{"id":"b","uploaded":"7"}]"#;
        let l2 = Lenient::<UploadSession>::from_slice(odd).unwrap();
        assert_eq!(l2.skipped, 1);
        assert_eq!(l2.items, l.items);
        let direct: Lenient<UploadSession> = serde_json::from_slice(odd).unwrap();
        assert_eq!((direct.items, direct.skipped), (l2.items, l2.skipped));
        // null and not-a-list.
        assert!(Lenient::<UploadSession>::from_slice(b"null")
            .unwrap()
            .items
            .is_empty());
        assert!(Lenient::<UploadSession>::from_slice(b"{\"x\":1}").is_err());
    }

    #[test]
    fn lenient_numbers_strings_and_the_rest() {
        let s: UploadSession =
            serde_json::from_str(r#"{"owner":7,"size":0,"uploaded":" 12 ","uploaded_parts":"x"}"#)
                .unwrap();
        assert_eq!(
            (s.owner, s.size, s.uploaded, s.uploaded_parts),
            (Some(7), Some(0), Some(12), None)
        );
        // Negative, fractional, too big, bool, null, object: judged later.
        for v in ["-1", "1.5", "18446744073709551616", "true", "null", "{}"] {
            let s: UploadSession = serde_json::from_str(&format!(r#"{{"size":{v}}}"#)).unwrap();
            assert_eq!(s.size, None, "{v}");
        }
        let p: FilePart = serde_json::from_str(r#"{"size":5242880,"part_number":"3"}"#).unwrap();
        assert_eq!((p.size, p.part_number), (Some(5_242_880), Some(3)));
        let a: AuthResponse =
            serde_json::from_str(r#"{"userId":61603,"vaultId":"1776","errors":null}"#).unwrap();
        assert_eq!(
            (a.user_id, a.vault_id, a.errors.len()),
            (Some(61603), Some(1776), 0)
        );
    }

    #[test]
    fn null_lists_and_maps_decode_as_empty() {
        let e: Envelope = serde_json::from_str(
            r#"{"responseStatus":"FAILURE","errors":[{"type":"INVALID_DATA","message":"m"}]}"#,
        )
        .unwrap();
        assert_eq!(e.errors.len(), 1);
        assert_eq!(e.errors[0].error_type.as_deref(), Some("INVALID_DATA"));
        let v: VersionsResponse =
            serde_json::from_str(r#"{"values":{"v25.1":"https://x/api/v25.1"}}"#).unwrap();
        assert_eq!(v.values.len(), 1);
        let v: VersionsResponse = serde_json::from_str(r#"{"values":null,"errors":null}"#).unwrap();
        assert!(v.values.is_empty() && v.errors.is_empty());
        let u: UsersResponse = serde_json::from_str(r#"{"users":null}"#).unwrap();
        assert!(u.users.is_empty());
    }

    fn user(first: Option<&str>, last: Option<&str>, login: Option<&str>) -> UserRecord {
        UserRecord {
            id: Some(1),
            user_name__v: login.map(str::to_string),
            user_first_name__v: first.map(str::to_string),
            user_last_name__v: last.map(str::to_string),
        }
    }

    #[test]
    fn display_name_prefers_the_full_name_then_the_login() {
        let login = Some(" ann@example.com ");
        let cases = [
            ((Some("Ann"), Some("Lee")), Some("Ann Lee")),
            ((Some(" Ann "), None), Some("Ann")),
            ((None, Some(" Lee")), Some("Lee")),
            ((Some("  "), Some("")), Some("ann@example.com")),
            ((None, None), Some("ann@example.com")),
        ];
        for ((first, last), want) in cases {
            assert_eq!(
                user(first, last, login).display_name().as_deref(),
                want,
                "{first:?} {last:?}"
            );
        }
        assert_eq!(user(Some(" "), None, Some("  ")).display_name(), None);
        assert_eq!(user(None, None, None).display_name(), None);
        // As decoded from Retrieve User.
        let r: UsersResponse = serde_json::from_str(
            r#"{"users":[{"user":{"id":"61603","user_name__v":"jo@x.com","user_first_name__v":"","user_last_name__v":null}}]}"#,
        )
        .unwrap();
        let rec = r.users[0].user.clone().unwrap();
        assert_eq!(rec.id, Some(61603));
        assert_eq!(rec.display_name().as_deref(), Some("jo@x.com"));
    }
}
