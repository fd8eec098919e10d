//! Request validation the way FastAPI/pydantic v2 does it: query
//! parameters and JSON bodies, with pydantic's error types, messages and
//! `ctx`. Every invalid parameter is reported (one problem each, in the
//! order the endpoint declares them); cross-parameter rules are checked
//! only once every parameter is valid.

use serde_json::{json, Value};
use uuid::Uuid;

use super::wire::{Loc, Problem};

/// Query parameters; a repeated name keeps its last value (Starlette).
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sort fields of Get Upload Sessions, in the API's enum order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortField {
    CreatedAt,
    ExpiresAt,
    IngestionStatusReason,
    Name,
    FileCount,
    Status,
    WriteMode,
}

const SORT_FIELDS: [(&str, SortField); 7] = [
    ("created_at", SortField::CreatedAt),
    ("expires_at", SortField::ExpiresAt),
    ("ingestion_status_reason", SortField::IngestionStatusReason),
    ("name", SortField::Name),
    ("file_count", SortField::FileCount),
    ("status", SortField::Status),
    ("write_mode", SortField::WriteMode),
];

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Asc,
    Desc,
}

/// Which page: by number (1-based) or relative to a cursor entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selection {
    Page(u64),
    After(Uuid),
    Before(Uuid),
}

/// Get Upload Sessions' query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    pub(crate) is_expired: Option<bool>,
    pub(crate) limit: usize,
    pub(crate) selection: Selection,
    pub(crate) field: SortField,
    pub(crate) order: Order,
}

/// The files listing's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FilesQuery {
    /// `PENDING`, `FAILED` or `FINISHED`.
    pub(crate) status: Option<&'static str>,
    pub(crate) limit: usize,
    pub(crate) selection: Selection,
}

/// Largest `limit`.
pub(crate) const MAX_LIMIT: i64 = 100;
const DEFAULT_LIMIT: usize = 10;

/// Validates Get Upload Sessions' query.
pub(crate) fn list_query(p: &Params) -> Result<ListQuery, Vec<Problem>> {
    let mut errs = Vec::new();
    let is_expired = p
        .get("is_expired")
        .and_then(|raw| keep(&mut errs, boolean(&["query", "is_expired"], raw)));
    let limit = limit(p, &mut errs);
    let before = p
        .get("before")
        .and_then(|raw| keep(&mut errs, uuid(&["query", "before"], raw)));
    let after = p
        .get("after")
        .and_then(|raw| keep(&mut errs, uuid(&["query", "after"], raw)));
    let page = page_number(p, &mut errs);
    let field = match p.get("field") {
        None => Some(SortField::CreatedAt),
        Some(raw) => keep(&mut errs, choice(&["query", "field"], raw, &SORT_FIELDS)),
    };
    let order = match p.get("order") {
        None => Some(Order::Desc),
        Some(raw) => keep(
            &mut errs,
            choice(
                &["query", "order"],
                raw,
                &[("ASC", Order::Asc), ("DESC", Order::Desc)],
            ),
        ),
    };
    match (limit, field, order) {
        (Some(limit), Some(field), Some(order)) if errs.is_empty() => Ok(ListQuery {
            is_expired,
            limit,
            selection: selection(p, page, after, before)?,
            field,
            order,
        }),
        _ => Err(errs),
    }
}

/// Validates the files listing's query.
pub(crate) fn files_query(p: &Params) -> Result<FilesQuery, Vec<Problem>> {
    const STATUSES: [(&str, &str); 3] = [
        ("PENDING", "PENDING"),
        ("FAILED", "FAILED"),
        ("FINISHED", "FINISHED"),
    ];
    let mut errs = Vec::new();
    let status = p.get("ingestion_status").and_then(|raw| {
        keep(
            &mut errs,
            choice(&["query", "ingestion_status"], raw, &STATUSES),
        )
    });
    let limit = limit(p, &mut errs);
    let before = p
        .get("before")
        .and_then(|raw| keep(&mut errs, uuid(&["query", "before"], raw)));
    let after = p
        .get("after")
        .and_then(|raw| keep(&mut errs, uuid(&["query", "after"], raw)));
    let page = page_number(p, &mut errs);
    match limit {
        Some(limit) if errs.is_empty() => Ok(FilesQuery {
            status,
            limit,
            selection: selection(p, page, after, before)?,
        }),
        _ => Err(errs),
    }
}

/// A path parameter that must be a UUID.
pub(crate) fn path_uuid(name: &str, raw: &str) -> Result<Uuid, Vec<Problem>> {
    uuid(&["path", name], raw).map_err(|p| vec![p])
}

fn keep<T>(errs: &mut Vec<Problem>, r: Result<T, Problem>) -> Option<T> {
    r.map_err(|p| errs.push(p)).ok()
}

fn limit(p: &Params, errs: &mut Vec<Problem>) -> Option<usize> {
    match p.get("limit") {
        None => Some(DEFAULT_LIMIT),
        Some(raw) => keep(
            errs,
            bounded(&["query", "limit"], raw, Some(1), Some(MAX_LIMIT)),
        )
        .and_then(|n| usize::try_from(n).ok()),
    }
}

fn page_number(p: &Params, errs: &mut Vec<Problem>) -> Option<u64> {
    p.get("page_number")
        .and_then(|raw| keep(errs, bounded(&["query", "page_number"], raw, Some(1), None)))
        .and_then(|n| u64::try_from(n).ok())
}

/// The cross-parameter rules: a page number or one cursor.
fn selection(
    p: &Params,
    page: Option<u64>,
    after: Option<Uuid>,
    before: Option<Uuid>,
) -> Result<Selection, Vec<Problem>> {
    let raw = |name| json!(p.get(name));
    match (page, after, before) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(vec![Problem::value_error(
            &["query", "page_number"],
            "page_number cannot be combined with after or before; clear page_number to use a cursor",
            raw("page_number"),
        )]),
        (_, Some(_), Some(_)) => Err(vec![Problem::value_error(
            &["query", "before"],
            "after and before cannot be combined",
            raw("before"),
        )]),
        (_, Some(id), None) => Ok(Selection::After(id)),
        (_, None, Some(id)) => Ok(Selection::Before(id)),
        (page, None, None) => Ok(Selection::Page(page.unwrap_or(1))),
    }
}

fn loc(names: &[&str]) -> Vec<Loc> {
    names.iter().map(|n| Loc::Name((*n).to_owned())).collect()
}

/// An integer as pydantic parses it from a string: optional sign and
/// digits, surrounding whitespace allowed. `Err(())` if not an integer;
/// out-of-range values saturate (Python integers are unbounded).
fn parse_int(raw: &str) -> Result<i64, ()> {
    let t = raw.trim();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return Err(());
    }
    let n = digits.parse::<i64>().unwrap_or(i64::MAX);
    Ok(if neg { -n } else { n })
}

/// Checks `ge`/`le` bounds of an integer, pydantic-style.
fn check_bounds(
    names: &[&str],
    n: i64,
    input: Value,
    ge: Option<i64>,
    le: Option<i64>,
) -> Result<i64, Problem> {
    if let Some(min) = ge.filter(|&min| n < min) {
        return Err(Problem::new(
            "greater_than_equal",
            names,
            format!("Input should be greater than or equal to {min}"),
            input,
            Some(json!({ "ge": min })),
        ));
    }
    if let Some(max) = le.filter(|&max| n > max) {
        return Err(Problem::new(
            "less_than_equal",
            names,
            format!("Input should be less than or equal to {max}"),
            input,
            Some(json!({ "le": max })),
        ));
    }
    Ok(n)
}

/// An integer query parameter with bounds.
fn bounded(names: &[&str], raw: &str, ge: Option<i64>, le: Option<i64>) -> Result<i64, Problem> {
    let n = parse_int(raw).map_err(|()| {
        Problem::new(
            "int_parsing",
            names,
            "Input should be a valid integer, unable to parse string as an integer",
            json!(raw),
            None,
        )
    })?;
    check_bounds(names, n, json!(raw), ge, le)
}

/// pydantic's lax booleans from strings.
fn str_bool(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
        "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
        _ => None,
    }
}

fn boolean(names: &[&str], raw: &str) -> Result<bool, Problem> {
    str_bool(raw).ok_or_else(|| {
        Problem::new(
            "bool_parsing",
            names,
            "Input should be a valid boolean, unable to interpret input",
            json!(raw),
            None,
        )
    })
}

fn uuid(names: &[&str], raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|e| {
        Problem::new(
            "uuid_parsing",
            names,
            format!("Input should be a valid UUID, {e}"),
            json!(raw),
            Some(json!({ "error": e.to_string() })),
        )
    })
}

/// `'a', 'b' or 'c'`, as pydantic lists enum members.
fn expected<T>(options: &[(&str, T)]) -> String {
    let quoted: Vec<String> = options.iter().map(|(s, _)| format!("'{s}'")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn enum_problem<T>(names: &[&str], input: Value, options: &[(&str, T)]) -> Problem {
    let expected = expected(options);
    Problem::new(
        "enum",
        names,
        format!("Input should be {expected}"),
        input,
        Some(json!({ "expected": expected })),
    )
}

fn choice<T: Copy>(names: &[&str], raw: &str, options: &[(&str, T)]) -> Result<T, Problem> {
    options
        .iter()
        .find(|(s, _)| *s == raw)
        .map(|(_, v)| *v)
        .ok_or_else(|| enum_problem(names, json!(raw), options))
}

// ------------------------------------------------------------------ bodies

/// Create Upload Session's body. Absent (or `null`) fields take their
/// defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CreateBody {
    pub(crate) expires_in_seconds: Option<u64>,
    pub(crate) write_mode: Option<String>,
    pub(crate) parallel_processing_enabled: Option<bool>,
}

/// Write modes accepted on creation.
pub(crate) const WRITE_MODES: [(&str, &str); 4] = [
    ("KEEP", "KEEP"),
    ("OVERWRITE", "OVERWRITE"),
    ("FAIL", "FAIL"),
    ("TEMPORARY", "TEMPORARY"),
];

/// Longest session lifetime a client may ask for.
pub(crate) const MAX_EXPIRES_IN: i64 = 86_400;

/// Parses Create Upload Session's body. An empty body counts as `{}`.
pub(crate) fn create_body(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<CreateBody, Vec<Problem>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(CreateBody::default());
    }
    let obj = json_object(content_type, bytes)?;
    let mut errs = Vec::new();
    let field = |name: &str| obj.get(name).filter(|v| !v.is_null());
    let expires_in_seconds = field("expires_in_seconds")
        .and_then(|v| {
            keep(
                &mut errs,
                json_int(
                    &["body", "expires_in_seconds"],
                    v,
                    Some(1),
                    Some(MAX_EXPIRES_IN),
                ),
            )
        })
        .and_then(|n| u64::try_from(n).ok());
    let write_mode = field("write_mode").and_then(|v| {
        let names = ["body", "write_mode"];
        let r = match v.as_str() {
            Some(s) => choice(&names, s, &WRITE_MODES),
            None => Err(enum_problem(&names, v.clone(), &WRITE_MODES)),
        };
        keep(&mut errs, r).map(str::to_owned)
    });
    let parallel_processing_enabled = field("parallel_processing_enabled").and_then(|v| {
        keep(
            &mut errs,
            json_bool(&["body", "parallel_processing_enabled"], v),
        )
    });
    if errs.is_empty() {
        Ok(CreateBody {
            expires_in_seconds,
            write_mode,
            parallel_processing_enabled,
        })
    } else {
        Err(errs)
    }
}

/// Checks a close request's body: exactly `{"status": "CLOSED"}` matters
/// (other fields are ignored).
pub(crate) fn close_body(content_type: Option<&str>, bytes: &[u8]) -> Result<(), Vec<Problem>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![Problem::new(
            "missing",
            &["body"],
            "Field required",
            Value::Null,
            None,
        )]);
    }
    let obj = json_object(content_type, bytes)?;
    match obj.get("status") {
        None => Err(vec![Problem::new(
            "missing",
            &["body", "status"],
            "Field required",
            Value::Object(obj),
            None,
        )]),
        Some(Value::String(s)) if s == "CLOSED" => Ok(()),
        Some(other) => Err(vec![Problem::new(
            "literal_error",
            &["body", "status"],
            "Input should be 'CLOSED'",
            other.clone(),
            Some(json!({ "expected": "'CLOSED'" })),
        )]),
    }
}

/// The body as a JSON object, or FastAPI's complaint.
fn json_object(
    content_type: Option<&str>,
    bytes: &[u8],
) -> Result<serde_json::Map<String, Value>, Vec<Problem>> {
    let not_object = |input: Value| {
        vec![Problem::new(
            "model_attributes_type",
            &["body"],
            "Input should be a valid dictionary or object to extract fields from",
            input,
            None,
        )]
    };
    // FastAPI parses JSON only for a JSON media type (or none); any other
    // body reaches validation as a string.
    if let Some(ct) = content_type {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let is_json = essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub == "json" || sub.ends_with("+json"));
        if !is_json {
            return Err(not_object(json!(String::from_utf8_lossy(bytes))));
        }
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(not_object(other)),
        Err(e) => {
            let mut loc = loc(&["body"]);
            loc.push(Loc::Index(byte_offset(bytes, e.line(), e.column())));
            Err(vec![Problem {
                kind: "json_invalid",
                loc,
                msg: "JSON decode error".to_owned(),
                input: json!({}),
                ctx: Some(Box::new(json!({ "error": e.to_string() }))),
            }])
        }
    }
}

/// 0-based byte offset of a 1-based (line, column) position.
fn byte_offset(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// An integer body field, lax like pydantic: integers, integral floats and
/// numeric strings.
fn json_int(names: &[&str], v: &Value, ge: Option<i64>, le: Option<i64>) -> Result<i64, Problem> {
    let n = match v {
        Value::Number(num) => match (num.as_i64(), num.as_u64(), num.as_f64()) {
            (Some(i), _, _) => i,
            (None, Some(_), _) => i64::MAX,
            (None, None, Some(f)) if f.fract() == 0.0 => f as i64,
            _ => {
                return Err(Problem::new(
                    "int_from_float",
                    names,
                    "Input should be a valid integer, got a number with a fractional part",
                    v.clone(),
                    None,
                ))
            }
        },
        Value::String(s) => parse_int(s).map_err(|()| {
            Problem::new(
                "int_parsing",
                names,
                "Input should be a valid integer, unable to parse string as an integer",
                v.clone(),
                None,
            )
        })?,
        _ => {
            return Err(Problem::new(
                "int_type",
                names,
                "Input should be a valid integer",
                v.clone(),
                None,
            ))
        }
    };
    check_bounds(names, n, v.clone(), ge, le)
}

/// A boolean body field, lax like pydantic.
fn json_bool(names: &[&str], v: &Value) -> Result<bool, Problem> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => boolean(names, s).map_err(|mut p| {
            p.input = v.clone();
            p
        }),
        _ => Err(Problem::new(
            "bool_type",
            names,
            "Input should be a valid boolean",
            v.clone(),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Params {
        Params::parse(Some(s))
    }

    fn problems(r: Result<ListQuery, Vec<Problem>>) -> Value {
        serde_json::to_value(r.err().unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn list_defaults() {
        assert_eq!(
            list_query(&q("")),
            Ok(ListQuery {
                is_expired: None,
                limit: 10,
                selection: Selection::Page(1),
                field: SortField::CreatedAt,
                order: Order::Desc,
            })
        );
        let id = "2d8a5f3e-1c4b-4e6f-9a7b-0c1d2e3f4a5b";
        assert_eq!(
            list_query(&q(&format!(
                "is_expired=YES&limit=100&after={id}&field=file_count&order=ASC&limit=7"
            ))),
            Ok(ListQuery {
                is_expired: Some(true),
                limit: 7,
                selection: Selection::After(Uuid::parse_str(id).unwrap_or_default()),
                field: SortField::FileCount,
                order: Order::Asc,
            })
        );
    }

    #[test]
    fn list_problems_are_pydantics() {
        assert_eq!(
            problems(list_query(&q(
                "limit=0&page_number=-3&order=asc&is_expired=maybe"
            ))),
            json!([
                {"type": "bool_parsing", "loc": ["query", "is_expired"],
                 "msg": "Input should be a valid boolean, unable to interpret input", "input": "maybe"},
                {"type": "greater_than_equal", "loc": ["query", "limit"],
                 "msg": "Input should be greater than or equal to 1", "input": "0", "ctx": {"ge": 1}},
                {"type": "greater_than_equal", "loc": ["query", "page_number"],
                 "msg": "Input should be greater than or equal to 1", "input": "-3", "ctx": {"ge": 1}},
                {"type": "enum", "loc": ["query", "order"], "msg": "Input should be 'ASC' or 'DESC'",
                 "input": "asc", "ctx": {"expected": "'ASC' or 'DESC'"}}
            ])
        );
        assert_eq!(
            problems(list_query(&q("limit=x1&field=size"))),
            json!([
                {"type": "int_parsing", "loc": ["query", "limit"],
                 "msg": "Input should be a valid integer, unable to parse string as an integer", "input": "x1"},
                {"type": "enum", "loc": ["query", "field"],
                 "msg": "Input should be 'created_at', 'expires_at', 'ingestion_status_reason', 'name', 'file_count', 'status' or 'write_mode'",
                 "input": "size",
                 "ctx": {"expected": "'created_at', 'expires_at', 'ingestion_status_reason', 'name', 'file_count', 'status' or 'write_mode'"}}
            ])
        );
        assert_eq!(
            problems(list_query(&q("limit=99999999999999999999999"))),
            json!([{"type": "less_than_equal", "loc": ["query", "limit"],
                    "msg": "Input should be less than or equal to 100",
                    "input": "99999999999999999999999", "ctx": {"le": 100}}])
        );
        let p = problems(list_query(&q("after=zz")));
        assert_eq!(p[0]["type"], "uuid_parsing");
        assert_eq!(p[0]["loc"], json!(["query", "after"]));
        let msg = p[0]["msg"].as_str().unwrap_or("");
        assert!(msg.starts_with("Input should be a valid UUID, "), "{msg}");
        assert_eq!(
            format!(
                "Input should be a valid UUID, {}",
                p[0]["ctx"]["error"].as_str().unwrap_or("")
            ),
            msg
        );
    }

    #[test]
    fn cursors_exclude_page_numbers_and_each_other() {
        let id = "2d8a5f3e-1c4b-4e6f-9a7b-0c1d2e3f4a5b";
        let p = problems(list_query(&q(&format!("page_number=2&before={id}"))));
        assert_eq!(p[0]["type"], "value_error");
        assert_eq!(p[0]["loc"], json!(["query", "page_number"]));
        assert_eq!(p[0]["input"], "2");
        let p = problems(list_query(&q(&format!("after={id}&before={id}"))));
        assert_eq!(p[0]["loc"], json!(["query", "before"]));
    }

    #[test]
    fn files_query_statuses() {
        assert_eq!(
            files_query(&q("ingestion_status=FAILED&limit=1")),
            Ok(FilesQuery {
                status: Some("FAILED"),
                limit: 1,
                selection: Selection::Page(1)
            })
        );
        let e = files_query(&q("ingestion_status=DONE"))
            .err()
            .unwrap_or_default();
        assert_eq!(e.len(), 1);
        assert_eq!(
            e[0].msg,
            "Input should be 'PENDING', 'FAILED' or 'FINISHED'"
        );
    }

    #[test]
    fn create_bodies() {
        let ok = |b: &str| create_body(Some("application/json"), b.as_bytes());
        assert_eq!(ok(""), Ok(CreateBody::default()));
        assert_eq!(
            ok(
                r#"{"expires_in_seconds": "60", "write_mode": "OVERWRITE", "parallel_processing_enabled": "yes", "x": 1}"#
            ),
            Ok(CreateBody {
                expires_in_seconds: Some(60),
                write_mode: Some("OVERWRITE".into()),
                parallel_processing_enabled: Some(true)
            })
        );
        assert_eq!(
            ok(r#"{"expires_in_seconds": null}"#),
            Ok(CreateBody::default())
        );
        let e = ok(
            r#"{"expires_in_seconds": 86401, "write_mode": 3, "parallel_processing_enabled": []}"#,
        )
        .err()
        .unwrap_or_default();
        let kinds: Vec<&str> = e.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, vec!["less_than_equal", "enum", "bool_type"]);
        let e = ok("{\n  \"a\": ,}").err().unwrap_or_default();
        assert_eq!(e[0].kind, "json_invalid");
        assert_eq!(e[0].loc[1], Loc::Index(9));
        let e = ok("[1]").err().unwrap_or_default();
        assert_eq!(e[0].kind, "model_attributes_type");
        let e = create_body(Some("text/plain"), b"hi")
            .err()
            .unwrap_or_default();
        assert_eq!(e[0].input, json!("hi"));
        assert_eq!(
            create_body(Some("application/vnd.api+json; charset=utf-8"), b"{}"),
            Ok(CreateBody::default())
        );
    }

    #[test]
    fn close_bodies() {
        let c = |b: &str| close_body(None, b.as_bytes());
        assert_eq!(c(r#"{"status": "CLOSED"}"#), Ok(()));
        assert_eq!(c("").err().unwrap_or_default()[0].kind, "missing");
        let e = c(r#"{"status": "OPEN"}"#).err().unwrap_or_default();
        assert_eq!(e[0].kind, "literal_error");
        assert_eq!(e[0].input, json!("OPEN"));
        let e = c(r#"{"state": "CLOSED"}"#).err().unwrap_or_default();
        assert_eq!(e[0].loc, loc(&["body", "status"]));
    }
}
