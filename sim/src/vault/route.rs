//! Which operation a request to a simulated Vault asks for.

use super::*;

/// The operation a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Op {
    ApiVersions,
    Auth,
    KeepAlive,
    Logout,
    List,
    Create,
    Details(String),
    Upload(String),
    Commit(String),
    Abort(String),
    Parts(String),
    User(u64),
}

impl Op {
    pub(super) fn endpoint(&self) -> Endpoint {
        match self {
            Self::ApiVersions => Endpoint::ApiVersions,
            Self::Auth => Endpoint::Auth,
            Self::KeepAlive => Endpoint::KeepAlive,
            Self::Logout => Endpoint::Logout,
            Self::List => Endpoint::ListSessions,
            Self::Create => Endpoint::CreateSession,
            Self::Details(_) => Endpoint::SessionDetails,
            Self::Upload(_) => Endpoint::UploadPart,
            Self::Commit(_) => Endpoint::CommitSession,
            Self::Abort(_) => Endpoint::AbortSession,
            Self::Parts(_) => Endpoint::ListParts,
            Self::User(_) => Endpoint::RetrieveUser,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Route {
    /// `None` only for `GET /api/`.
    pub(super) version: Option<String>,
    pub(super) op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RouteError {
    NotFound,
    Method,
}

/// `v` + digits + `.` + digits, e.g. `v25.2`.
pub(crate) fn is_version(s: &str) -> bool {
    s.strip_prefix('v')
        .and_then(|r| r.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty()
                && !b.is_empty()
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        })
}

/// Session ids are opaque but URL-safe; anything else is not a session id.
pub(super) fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'~'))
}

/// Parses the part of the path after the vault's mount point.
pub(super) fn parse_route(method: &Method, rest: &str) -> Result<Route, RouteError> {
    let api = rest.strip_prefix("/api").ok_or(RouteError::NotFound)?;
    if api.is_empty() || api == "/" {
        return if method == Method::GET {
            Ok(Route {
                version: None,
                op: Op::ApiVersions,
            })
        } else {
            Err(RouteError::Method)
        };
    }
    let after = api.strip_prefix('/').ok_or(RouteError::NotFound)?;
    let after = after.strip_suffix('/').unwrap_or(after);
    let mut segs = after.split('/');
    let version = segs
        .next()
        .filter(|v| is_version(v))
        .ok_or(RouteError::NotFound)?;
    let segs: Vec<&str> = segs.collect();
    let only = |wanted: Method, op: Op| {
        if *method == wanted {
            Ok(op)
        } else {
            Err(RouteError::Method)
        }
    };
    let op = match segs.as_slice() {
        ["auth"] => only(Method::POST, Op::Auth),
        ["keep-alive"] => only(Method::POST, Op::KeepAlive),
        ["session"] => only(Method::DELETE, Op::Logout),
        ["services", "file_staging", "upload"] => match *method {
            Method::GET => Ok(Op::List),
            Method::POST => Ok(Op::Create),
            _ => Err(RouteError::Method),
        },
        ["services", "file_staging", "upload", id] if is_id(id) => {
            let id = (*id).to_owned();
            match *method {
                Method::GET => Ok(Op::Details(id)),
                Method::PUT => Ok(Op::Upload(id)),
                Method::POST => Ok(Op::Commit(id)),
                Method::DELETE => Ok(Op::Abort(id)),
                _ => Err(RouteError::Method),
            }
        }
        ["services", "file_staging", "upload", id, "parts"] if is_id(id) => {
            only(Method::GET, Op::Parts((*id).to_owned()))
        }
        ["objects", "users", id] => match id.parse::<u64>() {
            Ok(id) => only(Method::GET, Op::User(id)),
            Err(_) => Err(RouteError::NotFound),
        },
        _ => Err(RouteError::NotFound),
    }?;
    Ok(Route {
        version: Some(version.to_owned()),
        op,
    })
}
