//! `GET /api/v1/sessions`: the page's data as JSON (schema in
//! docs/sessions-api.md). Sizes in bytes, durations in seconds, times in
//! RFC 3339 (UTC).

use serde::Serialize;

use super::{counts, cut_end, rfc3339, Filter, Row, Selection, PAGE_ROWS};
use crate::model::UnixMillis;

#[derive(Serialize)]
struct Api<'a> {
    generated_at: Option<String>,
    filters: Filters<'a>,
    page: usize,
    pages: usize,
    per_page: usize,
    total_sessions: usize,
    targets: Vec<Target<'a>>,
    sessions: Vec<SessionJson<'a>>,
}

#[derive(Serialize)]
struct Filters<'a> {
    target: &'a [String],
    owner_id: &'a [String],
    state: Vec<&'static str>,
}

#[derive(Serialize)]
struct Target<'a> {
    name: &'a str,
    kind: &'static str,
    up: bool,
    polled: bool,
    last_success_at: Option<String>,
    last_success_age_seconds: Option<f64>,
    last_error: Option<LastErrorJson>,
    sessions: usize,
    stalled: usize,
    at_risk: usize,
    awaiting_commit: usize,
}

#[derive(Serialize)]
struct LastErrorJson {
    reason: &'static str,
    message: String,
    at: Option<String>,
}

#[derive(Serialize)]
struct Files {
    total: u64,
    finished: u64,
    failed: u64,
    pending: u64,
}

#[derive(Serialize)]
struct SessionJson<'a> {
    target: &'a str,
    kind: &'static str,
    id: String,
    owner_id: String,
    owner_name: Option<String>,
    file: Option<String>,
    state: &'static str,
    states: Vec<&'static str>,
    state_label: String,
    stalled: bool,
    at_risk: bool,
    awaiting_commit: bool,
    uploaded_bytes: Option<u64>,
    size_bytes: Option<u64>,
    uploaded_parts: Option<u64>,
    progress_ratio: Option<f64>,
    rate_bytes_per_second: Option<f64>,
    eta_seconds: Option<f64>,
    created_at: Option<String>,
    last_upload_at: Option<String>,
    expires_at: Option<String>,
    expires_in_seconds: Option<f64>,
    polled_at: Option<String>,
    files: Option<Files>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn text(s: &str) -> String {
    cut_end(s, super::MAX_TEXT_CHARS)
}

fn session<'a>(r: &Row<'a>, polled_at: Option<UnixMillis>) -> SessionJson<'a> {
    let s = r.session;
    let vault = s.files.is_none();
    SessionJson {
        target: r.target,
        kind: r.kind,
        id: text(&s.id),
        owner_id: text(&s.owner_id),
        owner_name: s.owner_name.as_deref().map(text),
        file: s.path.as_deref().map(text),
        state: s.state.as_str(),
        states: r.state_keys(),
        state_label: r.state_label(),
        stalled: r.judgement.stalled,
        at_risk: r.judgement.at_risk,
        awaiting_commit: r.judgement.awaiting_commit,
        uploaded_bytes: vault.then_some(s.uploaded),
        size_bytes: if vault { s.size } else { None },
        uploaded_parts: vault.then_some(s.parts),
        progress_ratio: r.progress,
        rate_bytes_per_second: r.rate,
        eta_seconds: r.eta_ms.map(secs),
        created_at: s.created.and_then(rfc3339),
        last_upload_at: s.last_upload.and_then(rfc3339),
        expires_at: s.expires.and_then(rfc3339),
        expires_in_seconds: r.expires_in_ms.map(secs),
        polled_at: polled_at.and_then(rfc3339),
        files: s.files.map(|f| Files {
            total: f.total,
            finished: f.finished,
            failed: f.failed,
            pending: f.pending(),
        }),
    }
}

/// The JSON document of one page.
pub fn render(sel: &Selection<'_>, filter: &Filter, now: UnixMillis) -> String {
    let targets = sel
        .targets
        .iter()
        .map(|v| {
            let c = counts(v);
            Target {
                name: &v.name,
                kind: v.kind,
                up: v.up,
                polled: v.polled,
                last_success_at: v.last_success.and_then(rfc3339),
                last_success_age_seconds: v.last_success.map(|t| secs(now.saturating_sub(t))),
                last_error: v.last_error.as_ref().map(|e| LastErrorJson {
                    reason: e.reason.as_str(),
                    message: e.message.clone(),
                    at: rfc3339(e.at),
                }),
                sessions: c.sessions,
                stalled: c.stalled,
                at_risk: c.at_risk,
                awaiting_commit: c.awaiting_commit,
            }
        })
        .collect();
    let api = Api {
        generated_at: rfc3339(now),
        filters: Filters {
            target: &filter.targets,
            owner_id: &filter.owners,
            state: filter.states.iter().map(|s| s.as_str()).collect(),
        },
        page: sel.page,
        pages: sel.pages,
        per_page: PAGE_ROWS,
        total_sessions: sel.total,
        targets,
        sessions: sel.rows.iter().map(|r| session(r, r.polled_at)).collect(),
    };
    serde_json::to_string_pretty(&api)
        .unwrap_or_else(|_| "{\"error\":\"cannot encode the sessions\"}".to_string())
}
