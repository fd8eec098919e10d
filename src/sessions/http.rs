//! `GET /sessions` and `GET /api/v1/sessions`: the query, the selection,
//! the response. Protection (basic auth, TLS) is the server's, as for
//! `/metrics`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::{select, Board, Filter, StateFilter, PAGE_ROWS};
use crate::model::now_millis;

/// The HTML page's path.
pub const PAGE_PATH: &str = "/sessions";
/// The JSON API's path.
pub const API_PATH: &str = "/api/v1/sessions";

/// Values per query key at most (each costs a comparison per row).
const MAX_VALUES: usize = 64;

/// A parsed query: filters and page.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Query {
    /// The filters.
    pub filter: Filter,
    /// Requested page, from 1.
    pub page: usize,
}

/// Parses `?target=&owner_id=&state=&page=`; empty values mean "any"
/// (what the page's form sends for "all"), unknown keys are ignored.
pub fn parse_query(query: &str) -> Result<Query, String> {
    let mut q = Query {
        page: 1,
        ..Query::default()
    };
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_ref() {
            "target" if q.filter.targets.len() < MAX_VALUES => q.filter.targets.push(v.to_string()),
            "owner_id" if q.filter.owners.len() < MAX_VALUES => q.filter.owners.push(v.to_string()),
            "state" => match StateFilter::parse(v) {
                Some(s) if !q.filter.states.contains(&s) => q.filter.states.push(s),
                Some(_) => {}
                None => {
                    let known: Vec<&str> = StateFilter::ALL.iter().map(|s| s.as_str()).collect();
                    return Err(format!(
                        "state={:?} is not a state; use one of: {}",
                        super::cut_end(v, 40),
                        known.join(", ")
                    ));
                }
            },
            "page" => q.page = v.parse::<usize>().unwrap_or(1).max(1),
            _ => {}
        }
    }
    Ok(q)
}

/// Answers `GET /sessions` (HTML) or `GET /api/v1/sessions` (JSON).
pub fn respond<B>(req: &Request<B>, board: &Board) -> Response<Full<Bytes>> {
    let api = req.uri().path() == API_PATH;
    let query = match parse_query(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e, api),
    };
    let now = now_millis();
    let views = board.snapshot();
    let selection = select(&views, &query.filter, query.page, PAGE_ROWS, now);
    let (body, content_type) = if api {
        (
            super::json::render(&selection, &query.filter, now),
            "application/json",
        )
    } else {
        (
            super::html::render(&selection, &query.filter, &views, now),
            "text/html; charset=utf-8",
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    headers(&mut r, content_type);
    r
}

/// The page shows file names: no caching on the way, no sniffing, and no
/// script or outside resource may run or load even if escaping failed.
fn headers(r: &mut Response<Full<Bytes>>, content_type: &'static str) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn error(status: StatusCode, message: &str, api: bool) -> Response<Full<Bytes>> {
    let (body, content_type) = if api {
        (
            serde_json::json!({ "error": message }).to_string(),
            "application/json",
        )
    } else {
        (format!("{message}\n"), "text/plain; charset=utf-8")
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    headers(&mut r, content_type);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = parse_query("target=v&owner_id=7&state=at-risk&state=stalled&page=3&x=1").unwrap();
        assert_eq!(q.filter.targets, ["v"]);
        assert_eq!(q.filter.owners, ["7"]);
        assert_eq!(q.filter.states, [StateFilter::AtRisk, StateFilter::Stalled]);
        assert_eq!(q.page, 3);
        // The form's "all" sends empty values.
        let q = parse_query("target=&owner_id=&state=&page=0").unwrap();
        assert_eq!(
            q,
            Query {
                page: 1,
                ..Query::default()
            }
        );
        let e = parse_query("state=%3Cb%3E").unwrap_err();
        assert!(e.contains("stalled, at_risk"), "{e}");
        assert_eq!(parse_query("target=a%20b").unwrap().filter.targets, ["a b"]);
    }
}
