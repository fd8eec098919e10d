//! `GET /sessions`: the sessions of every target as one server-rendered
//! page. No script, no outside resources: the CSS is inline, the filters
//! are a plain GET form, the progress bars are `<progress>` elements. Every
//! upstream string goes through [`esc`]; long ones are cut (the `title`
//! holds more of it).

use std::fmt::Write as _;
use std::sync::Arc;

use super::http::PAGE_PATH;
use super::{
    bytes, counts, cut_end, cut_start, human_time, percent, rfc3339, short_duration, Filter, Row,
    Selection, StateFilter, TargetView, MAX_TEXT_CHARS,
};
use crate::model::UnixMillis;

/// Characters shown of a file path (cut from the left) or an owner name.
const SHOWN_CHARS: usize = 80;

const CSS: &str = "\
*{box-sizing:border-box}\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;padding:16px;color:#1d1d1f;background:#fff}\
main{max-width:1500px;margin:0 auto}\
h1{font-size:22px;margin:0 0 2px}h2{font-size:17px;margin:20px 0 8px}h3{font-size:15px;margin:16px 0 6px}\
a{color:#0b5cad}.muted,.id{color:#5f6470}.id{font-size:12px;word-break:break-all}\
form.filters{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:flex-end;margin:12px 0;padding:10px 12px;background:#f3f4f7;border-radius:8px}\
form.filters label{display:flex;flex-direction:column;font-size:12px;color:#4a4f5a;gap:2px}\
input,select,button{font:inherit;padding:4px 6px;max-width:100%}button{cursor:pointer}\
.targets{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:10px}\
.target{border:1px solid #d9dce3;border-radius:8px;padding:8px 12px}.target h3{margin:0 0 4px;word-break:break-all}\
.target p{margin:2px 0}.err{color:#9b1c1c;word-break:break-word}\
.badge{display:inline-block;padding:0 7px;margin:1px 2px 1px 0;border-radius:10px;font-size:12px;border:1px solid currentColor;white-space:nowrap}\
.up{color:#17703a}.down,.stalled,.at_risk{color:#b3261e}.awaiting_commit{color:#935400}\
.active,.open{color:#0b5cad}.closed{color:#4a4f5a}.expired{color:#6f6f6f}.kind{color:#4a4f5a}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e4e6eb;vertical-align:top}\
th{font-size:12px;color:#4a4f5a;background:#f3f4f7;white-space:nowrap}\
td.num,td.t{white-space:nowrap}td>div{min-width:0}td.file{word-break:break-all;max-width:34em}\
tr.urgent td{background:#fdf1f0}\
progress{width:90px;height:10px;vertical-align:middle;margin-right:6px}\
.pager{display:flex;flex-wrap:wrap;gap:14px;align-items:center;margin:14px 0}\
footer{margin-top:24px;font-size:12px;color:#5f6470}\
@media (max-width:720px){body{padding:10px}\
table,thead,tbody,tr,td{display:block}thead{display:none}\
tr{border:1px solid #d9dce3;border-radius:8px;margin:0 0 10px;padding:4px 0}\
td{border:0;padding:2px 10px;display:flex;gap:10px}td.file{max-width:none}\
td::before{content:attr(data-label);flex:0 0 7.2em;color:#5f6470;font-size:12px}\
tr.urgent td{background:none}tr.urgent{background:#fdf1f0}}";

/// Escapes text for HTML element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A link to the page with these filters (escaped for an attribute).
fn href(targets: &[&str], owners: &[&str], states: &[&str], page: usize) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for t in targets {
        q.append_pair("target", t);
    }
    for o in owners {
        q.append_pair("owner_id", o);
    }
    for s in states {
        q.append_pair("state", s);
    }
    if page > 1 {
        q.append_pair("page", &page.to_string());
    }
    let q = q.finish();
    if q.is_empty() {
        PAGE_PATH.to_string()
    } else {
        esc(&format!("{PAGE_PATH}?{q}"))
    }
}

fn human(f: StateFilter) -> &'static str {
    match f {
        StateFilter::Stalled => "stalled",
        StateFilter::AtRisk => "at risk",
        StateFilter::AwaitingCommit => "awaiting commit",
        StateFilter::Is(s) => s.as_str(),
    }
}

/// The page.
pub fn render(
    sel: &Selection<'_>,
    filter: &Filter,
    all: &[Arc<TargetView>],
    now: UnixMillis,
) -> String {
    let mut o = String::with_capacity(8192 + sel.rows.len() * 900);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Upload sessions · upload_session_exporter</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n\
         <h1>Upload sessions</h1>\n<p class=\"muted\">From each target's last poll (this page makes no upstream call). \
         Generated <time datetime=\"{}\">{}</time>. <a href=\"/\">Exporter</a> · <a href=\"{}\">JSON</a></p>\n",
        esc(&rfc3339(now).unwrap_or_default()),
        human_time(now),
        esc(&api_href(filter, sel.page)),
    );
    form(&mut o, filter, all);
    targets(&mut o, sel, now);
    sessions(&mut o, sel, filter);
    let _ = write!(
        o,
        "<footer>upload_session_exporter {}. Sizes in binary units; times in UTC.</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    o
}

fn api_href(filter: &Filter, page: usize) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for t in &filter.targets {
        q.append_pair("target", t);
    }
    for o in &filter.owners {
        q.append_pair("owner_id", o);
    }
    for s in &filter.states {
        q.append_pair("state", s.as_str());
    }
    if page > 1 {
        q.append_pair("page", &page.to_string());
    }
    let q = q.finish();
    if q.is_empty() {
        super::http::API_PATH.to_string()
    } else {
        format!("{}?{q}", super::http::API_PATH)
    }
}

fn form(o: &mut String, filter: &Filter, all: &[Arc<TargetView>]) {
    let _ = write!(
        o,
        "<form class=\"filters\" method=\"get\" action=\"{PAGE_PATH}\">\n\
         <label>Target<select name=\"target\"><option value=\"\">all targets</option>"
    );
    for v in all {
        let selected = if filter.targets.iter().any(|t| *t == v.name) {
            " selected"
        } else {
            ""
        };
        let name = esc(&cut_end(&v.name, SHOWN_CHARS));
        let _ = write!(
            o,
            "<option value=\"{}\"{selected}>{name}</option>",
            esc(&v.name)
        );
    }
    let owner = filter.owners.first().map(|s| esc(s)).unwrap_or_default();
    let _ = write!(
        o,
        "</select></label>\n<label>Owner ID<input name=\"owner_id\" value=\"{owner}\" size=\"20\" \
         placeholder=\"any\"></label>\n<label>State<select name=\"state\"><option value=\"\">any state</option>"
    );
    for f in StateFilter::ALL {
        let selected = if filter.states.contains(&f) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            o,
            "<option value=\"{}\"{selected}>{}</option>",
            f.as_str(),
            human(f)
        );
    }
    let _ = write!(
        o,
        "</select></label>\n<button type=\"submit\">Filter</button> <a href=\"{PAGE_PATH}\">Clear</a>\n</form>\n"
    );
}

fn targets(o: &mut String, sel: &Selection<'_>, now: UnixMillis) {
    let _ = write!(o, "<h2>Targets</h2>\n<div class=\"targets\">\n");
    if sel.targets.is_empty() {
        o.push_str("<p class=\"muted\">No target matches.</p>\n");
    }
    for v in &sel.targets {
        let c = counts(v);
        let name = esc(&cut_end(&v.name, SHOWN_CHARS));
        let (cls, word) = match (v.polled, v.up) {
            (false, _) => ("kind", "waiting for the first poll"),
            (true, true) => ("up", "up"),
            (true, false) => ("down", "down"),
        };
        let _ = write!(
            o,
            "<section class=\"target\" data-target=\"{}\">\n<h3><a href=\"{}\">{name}</a> \
             <span class=\"badge kind\">{}</span> <span class=\"badge {cls}\">{word}</span></h3>\n",
            esc(&v.name),
            href(&[&v.name], &[], &[], 1),
            v.kind
        );
        match v.last_success {
            Some(t) => {
                let _ = writeln!(
                    o,
                    "<p>Last successful poll: <time datetime=\"{}\">{}</time> ({} ago)</p>",
                    esc(&rfc3339(t).unwrap_or_default()),
                    human_time(t),
                    short_duration(now.saturating_sub(t))
                );
            }
            None => o.push_str("<p>No successful poll yet.</p>\n"),
        }
        if let Some(e) = &v.last_error {
            let _ = writeln!(
                o,
                "<p class=\"err\">Last error ({}): <span class=\"badge down\">{}</span> {}</p>",
                short_duration(now.saturating_sub(e.at)),
                e.reason.as_str(),
                esc(&e.message)
            );
        }
        let link = |state: StateFilter, n: usize| {
            if n == 0 {
                format!("{n} {}", human(state))
            } else {
                format!(
                    "<a class=\"{}\" href=\"{}\">{n} {}</a>",
                    state.as_str(),
                    href(&[&v.name], &[], &[state.as_str()], 1),
                    human(state)
                )
            }
        };
        let _ = writeln!(
            o,
            "<p>{} session(s): {}, {}, {}</p>\n</section>",
            c.sessions,
            link(StateFilter::Stalled, c.stalled),
            link(StateFilter::AtRisk, c.at_risk),
            link(StateFilter::AwaitingCommit, c.awaiting_commit)
        );
    }
    o.push_str("</div>\n");
}

fn pager(o: &mut String, sel: &Selection<'_>, filter: &Filter) {
    if sel.pages <= 1 {
        return;
    }
    let t: Vec<&str> = filter.targets.iter().map(String::as_str).collect();
    let w: Vec<&str> = filter.owners.iter().map(String::as_str).collect();
    let s: Vec<&str> = filter.states.iter().map(|s| s.as_str()).collect();
    o.push_str("<nav class=\"pager\">");
    if sel.page > 1 {
        let _ = write!(
            o,
            "<a rel=\"prev\" href=\"{}\">← previous</a>",
            href(&t, &w, &s, sel.page - 1)
        );
    }
    let _ = write!(o, "<span>page {} of {}</span>", sel.page, sel.pages);
    if sel.page < sel.pages {
        let _ = write!(
            o,
            "<a rel=\"next\" href=\"{}\">next →</a>",
            href(&t, &w, &s, sel.page + 1)
        );
    }
    o.push_str("</nav>\n");
}

fn sessions(o: &mut String, sel: &Selection<'_>, filter: &Filter) {
    let first = (sel.page - 1) * super::PAGE_ROWS + usize::from(!sel.rows.is_empty());
    let last = first + sel.rows.len().saturating_sub(1);
    let _ = writeln!(
        o,
        "<h2>Sessions</h2>\n<p class=\"muted\" id=\"count\">{} matching session(s){}; most urgent first.</p>",
        sel.total,
        if sel.total > sel.rows.len() {
            format!(", showing {first}–{last}")
        } else {
            String::new()
        }
    );
    pager(o, sel, filter);
    if !sel.rows.is_empty() {
        o.push_str(
            "<table class=\"sessions\"><thead><tr><th>Target</th><th>Owner</th><th>File / session</th>\
             <th>Progress</th><th>Uploaded / files</th><th>Rate</th><th>ETA</th><th>Expires in</th><th>State</th></tr></thead><tbody>\n",
        );
        for r in &sel.rows {
            row(o, r);
        }
        o.push_str("</tbody></table>\n");
    }
    pager(o, sel, filter);
}

fn row(o: &mut String, r: &Row<'_>) {
    let s = r.session;
    let keys = r.state_keys();
    let _ = write!(
        o,
        "<tr{} data-target=\"{}\" data-owner=\"{}\" data-state=\"{}\"><td class=\"t\" data-label=\"Target\">\
         <a href=\"{}\">{}</a></td>",
        if r.urgent() { " class=\"urgent\"" } else { "" },
        esc(r.target),
        esc(&cut_end(&s.owner_id, MAX_TEXT_CHARS)),
        keys.join(" "),
        href(&[r.target], &[], &[], 1),
        esc(&cut_end(r.target, 40)),
    );
    // Owner: the name links to the owner's sessions on this target.
    // Cut like every upstream string: a link of a 15 KB id per row would
    // make the page as large as the upstream wants.
    let owner_link = href(
        &[r.target],
        &[&cut_end(&s.owner_id, MAX_TEXT_CHARS)],
        &[],
        1,
    );
    let shown = s.owner_name.as_deref().unwrap_or(&s.owner_id);
    let _ = write!(
        o,
        "<td data-label=\"Owner\"><div><a href=\"{owner_link}\">{}</a>",
        esc(&cut_end(shown, SHOWN_CHARS))
    );
    if s.owner_name.is_some() {
        let _ = write!(
            o,
            "<br><span class=\"id\">{}</span>",
            esc(&cut_end(&s.owner_id, SHOWN_CHARS))
        );
    }
    o.push_str("</div></td>");
    let (label, key) = match &s.path {
        Some(p) => ("File", p.as_str()),
        None => ("Session", s.id.as_str()),
    };
    let _ = write!(
        o,
        "<td class=\"file\" data-label=\"{label}\" title=\"{}\">{}</td>",
        esc(&cut_start(key, MAX_TEXT_CHARS)),
        esc(&cut_start(key, SHOWN_CHARS))
    );
    match r.progress {
        Some(p) => {
            let permille = (p.clamp(0.0, 1.0) * 1000.0).round() as u32;
            let _ = write!(
                o,
                "<td class=\"num\" data-label=\"Progress\"><progress max=\"1000\" value=\"{permille}\">{0}</progress>{0}</td>",
                percent(p)
            );
        }
        None => o.push_str("<td class=\"num\" data-label=\"Progress\">–</td>"),
    }
    match s.files {
        Some(f) if s.state == crate::model::SessionState::Open => {
            let _ = write!(o, "<td data-label=\"Files\">{} uploaded</td>", f.total);
        }
        Some(f) => {
            let _ = write!(
                o,
                "<td data-label=\"Files\">{}: {} ingested, {} failed, {} pending</td>",
                f.total,
                f.finished,
                f.failed,
                f.pending()
            );
        }
        None => {
            let _ = write!(
                o,
                "<td class=\"num\" data-label=\"Uploaded\">{} / {}</td>",
                bytes(s.uploaded),
                s.size.map_or_else(|| "?".to_string(), bytes)
            );
        }
    }
    let dash = || "–".to_string();
    let _ = write!(
        o,
        "<td class=\"num\" data-label=\"Rate\">{}</td><td class=\"num\" data-label=\"ETA\">{}</td>",
        r.rate
            .map_or_else(dash, |v| format!("{}/s", bytes(v as u64))),
        r.eta_ms.map_or_else(dash, short_duration)
    );
    match (r.expires_in_ms, s.expires.and_then(rfc3339)) {
        (Some(ms), Some(at)) => {
            let _ = write!(
                o,
                "<td class=\"num\" data-label=\"Expires in\"><time datetime=\"{0}\" title=\"{0}\">{1}</time></td>",
                esc(&at),
                short_duration(ms)
            );
        }
        _ => o.push_str("<td class=\"num\" data-label=\"Expires in\">–</td>"),
    }
    // One badge per word of the state label ("open", "stalled").
    o.push_str("<td data-label=\"State\">");
    let plain_active = keys.len() > 1 && s.state == crate::model::SessionState::Active;
    for k in keys.iter().skip(usize::from(plain_active)) {
        let _ = write!(
            o,
            "<span class=\"badge {k}\">{}</span>",
            k.replace('_', " ")
        );
    }
    o.push_str("</td></tr>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<img src=x onerror=alert(1)>.bin"),
            "&lt;img src=x onerror=alert(1)&gt;.bin"
        );
        assert_eq!(esc("a\"b'c&d"), "a&quot;b&#39;c&amp;d");
        assert_eq!(esc("Zoë 日本\u{7}"), "Zoë 日本\u{FFFD}");
    }
}
