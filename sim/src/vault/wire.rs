//! Vault's wire format as the simulator writes it: the error types and
//! bodies of `FAILURE` answers and the JSON shapes of the answers.

use super::*;

/// Vault error types the simulator answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorType {
    MalformedUrl,
    MethodNotSupported,
    InactiveUser,
    NoPasswordProvided,
    UsernameOrPasswordIncorrect,
    UserLockedOut,
    InvalidSessionId,
    ParameterRequired,
    InvalidData,
    InsufficientAccess,
    OperationNotAllowed,
    ExceedsFileMaxSize,
    ApiLimitExceeded,
    UserNotFound,
}

impl ErrorType {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::MalformedUrl => "MALFORMED_URL",
            Self::MethodNotSupported => "METHOD_NOT_SUPPORTED",
            Self::InactiveUser => "INACTIVE_USER",
            Self::NoPasswordProvided => "NO_PASSWORD_PROVIDED",
            Self::UsernameOrPasswordIncorrect => "USERNAME_OR_PASSWORD_INCORRECT",
            Self::UserLockedOut => "USER_LOCKED_OUT",
            Self::InvalidSessionId => "INVALID_SESSION_ID",
            Self::ParameterRequired => "PARAMETER_REQUIRED",
            Self::InvalidData => "INVALID_DATA",
            Self::InsufficientAccess => "INSUFFICIENT_ACCESS",
            Self::OperationNotAllowed => "OPERATION_NOT_ALLOWED",
            Self::ExceedsFileMaxSize => "EXCEEDS_FILE_MAX_SIZE",
            Self::ApiLimitExceeded => "API_LIMIT_EXCEEDED",
            Self::UserNotFound => "USER_NOT_FOUND",
        }
    }
}

/// A Vault `FAILURE`: one `errors[]` entry (plus top-level `errorType` for
/// login failures).
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", kind.as_str())]
pub(crate) struct VaultError {
    pub(super) kind: ErrorType,
    pub(super) message: String,
    pub(super) auth: bool,
}

impl VaultError {
    pub(super) fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            auth: false,
        }
    }

    pub(super) fn auth(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            auth: true,
            ..Self::new(kind, message)
        }
    }

    pub(super) fn invalid_session() -> Self {
        Self::new(ErrorType::InvalidSessionId, INVALID_SESSION_MSG)
    }

    pub(super) fn invalid_data(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidData, message)
    }

    pub(super) fn required(param: &str) -> Self {
        Self::new(
            ErrorType::ParameterRequired,
            format!("Missing required parameter [{param}]"),
        )
    }

    pub(super) fn insufficient() -> Self {
        Self::new(
            ErrorType::InsufficientAccess,
            "User does not have sufficient privileges to perform the action.",
        )
    }

    pub(super) fn body(&self) -> Bytes {
        failure_body(
            self.kind.as_str(),
            &self.message,
            self.auth.then_some(self.kind.as_str()),
        )
    }
}

// ---------------------------------------------------------------- wire JSON

#[derive(Serialize)]
pub(super) struct ErrorJson<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FailureJson<'a> {
    pub(super) response_status: &'static str,
    pub(super) errors: [ErrorJson<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error_type: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StatusJson {
    pub(super) response_status: &'static str,
}

#[derive(Serialize)]
pub(super) struct NextPageJson {
    pub(super) next_page: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DataJson<T> {
    pub(super) response_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) response_details: Option<NextPageJson>,
    pub(super) data: T,
}

impl<T> DataJson<T> {
    pub(super) fn new(data: T) -> Self {
        Self {
            response_status: SUCCESS,
            response_details: None,
            data,
        }
    }
}

#[derive(Serialize)]
pub(super) struct VersionsJson {
    #[serde(rename = "responseStatus")]
    pub(super) response_status: &'static str,
    pub(super) values: BTreeMap<String, String>,
}

#[derive(Serialize)]
pub(super) struct VaultIdJson {
    pub(super) id: u64,
    pub(super) name: String,
    pub(super) url: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuthJson {
    pub(super) response_status: &'static str,
    pub(super) session_id: String,
    pub(super) user_id: u64,
    pub(super) vault_ids: Vec<VaultIdJson>,
    pub(super) vault_id: u64,
}

/// An upload session as List Upload Sessions / Get Details show it (seed
/// 000/002 field order).
#[derive(Serialize)]
pub(super) struct SessionJson<'a> {
    pub(super) path: &'a str,
    pub(super) id: &'a str,
    pub(super) expiration_date: String,
    pub(super) created_date: String,
    pub(super) last_uploaded_date: String,
    pub(super) owner: u64,
    pub(super) uploaded_parts: u32,
    pub(super) size: u64,
    pub(super) uploaded: u64,
}

impl<'a> From<&'a Upload> for SessionJson<'a> {
    fn from(u: &'a Upload) -> Self {
        Self {
            path: &u.path,
            id: &u.id,
            expiration_date: format_ts(u.expiration),
            created_date: format_ts(u.created),
            last_uploaded_date: format_ts(u.last_uploaded),
            owner: u.owner,
            uploaded_parts: u.uploaded_parts,
            size: u.size,
            uploaded: u.uploaded,
        }
    }
}

/// Create Upload Session's `data`.
#[derive(Serialize)]
pub(super) struct CreatedJson<'a> {
    pub(super) path: &'a str,
    pub(super) name: &'a str,
    pub(super) id: &'a str,
    pub(super) expiration_date: String,
    pub(super) created_date: String,
    pub(super) last_uploaded_date: String,
    pub(super) owner: u64,
    pub(super) uploaded_parts: u32,
    pub(super) size: u64,
    pub(super) uploaded: u64,
    pub(super) overwrite: bool,
}

#[derive(Serialize)]
pub(super) struct PartJson<'a> {
    pub(super) size: u64,
    pub(super) part_number: u32,
    pub(super) part_content_md5: &'a str,
}

#[derive(Serialize)]
pub(super) struct JobJson {
    pub(super) job_id: u64,
}

pub(super) const SUCCESS: &str = "SUCCESS";

/// Serializes a response body. Serializing these plain structs cannot
/// fail; the fallback only keeps that an invariant rather than a panic.
pub(super) fn to_json<T: Serialize>(value: &T) -> Bytes {
    serde_json::to_vec(value).map(Bytes::from).unwrap_or_else(|_| {
        Bytes::from_static(
            br#"{"responseStatus":"EXCEPTION","errors":[{"type":"UNEXPECTED_ERROR","message":"Response could not be serialized."}]}"#,
        )
    })
}

pub(super) fn failure_body(kind: &str, message: &str, error_type: Option<&str>) -> Bytes {
    to_json(&FailureJson {
        response_status: "FAILURE",
        errors: [ErrorJson { kind, message }],
        error_type,
    })
}

/// A `FAILURE` whose error message is also the top-level `responseMessage`.
pub(super) fn failure_body_with_message(kind: &str, message: &str) -> Bytes {
    #[derive(Serialize)]
    struct Json<'a> {
        #[serde(rename = "responseStatus")]
        response_status: &'static str,
        #[serde(rename = "responseMessage")]
        response_message: &'a str,
        errors: [ErrorJson<'a>; 1],
    }
    to_json(&Json {
        response_status: "FAILURE",
        response_message: message,
        errors: [ErrorJson { kind, message }],
    })
}
