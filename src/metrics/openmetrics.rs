//! The OpenMetrics 1.0 text format, served when a scraper asks for it
//! (Prometheus offers it first in its `Accept` header).
//!
//! Sample lines are the same bytes as in the 0.0.4 text format (same names,
//! label escaping and values), so the page is the text page with other
//! metadata lines and a closing `# EOF`:
//! - a counter family is named without `_total` in `# HELP`/`# TYPE` (its
//!   samples keep `_total`);
//! - `# UNIT` where the family name ends in a base unit (`_seconds`, `_bytes`);
//! - `"` is escaped in HELP text too;
//! - info-style gauges (`*_info`) stay gauges, as client_golang leaves them.

/// `Content-Type` of an OpenMetrics page.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The last line of every OpenMetrics page.
pub const EOF: &str = "# EOF\n";

/// Units declared with `# UNIT` when a family name ends in `_<unit>`.
const UNITS: &[&str] = &["seconds", "bytes"];

/// The OpenMetrics family name of a metric: counters drop `_total`.
pub fn family_name<'a>(name: &'a str, kind: &str) -> &'a str {
    match kind {
        "counter" => name.strip_suffix("_total").unwrap_or(name),
        _ => name,
    }
}

/// Appends the `# HELP`, `# TYPE` and (where the name carries one)
/// `# UNIT` lines of a family. `name` is the sample name (with `_total`
/// for counters); `help` is unescaped text.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let family = family_name(name, kind);
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.push('\n');
    metadata_tail(out, family, kind);
}

/// `# TYPE` and `# UNIT` of `family`.
fn metadata_tail(out: &mut String, family: &str, kind: &str) {
    out.push_str("# TYPE ");
    out.push_str(family);
    out.push(' ');
    // OpenMetrics calls the text format's `untyped` `unknown`.
    out.push_str(if kind == "untyped" { "unknown" } else { kind });
    out.push('\n');
    if let Some(unit) = UNITS
        .iter()
        .find(|u| family.len() > u.len() + 1 && family.ends_with(&format!("_{u}")))
    {
        out.push_str("# UNIT ");
        out.push_str(family);
        out.push(' ');
        out.push_str(unit);
        out.push('\n');
    }
}

/// Converts a page in the 0.0.4 text format (as the `prometheus` crate's
/// `TextEncoder` writes it: `# HELP` then `# TYPE` then the samples of each
/// family) to OpenMetrics metadata, appending to `out`. Sample lines are
/// copied unchanged; the closing `# EOF` is the caller's.
pub fn convert_text(text: &str, out: &mut String) {
    // A HELP line waits for its TYPE, which decides the family name.
    let mut help: Option<(&str, &str)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, h)) = help.take() {
                // HELP without TYPE: unknown.
                help_line(out, name, h);
                metadata_tail(out, name, "unknown");
            }
            let (name, h) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, h));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let family = family_name(name, kind);
            if let Some((hname, h)) = help.take() {
                if hname == name {
                    help_line(out, family, h);
                } else {
                    help_line(out, hname, h);
                    metadata_tail(out, hname, "unknown");
                }
            }
            metadata_tail(out, family, kind);
        } else if line.starts_with('#') || line.trim().is_empty() {
            // Other comments are not allowed in OpenMetrics.
        } else {
            if let Some((name, h)) = help.take() {
                help_line(out, name, h);
                metadata_tail(out, name, "unknown");
            }
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A HELP line from text already escaped for the 0.0.4 format (backslash
/// and newline), which OpenMetrics escapes the same, plus `"`.
fn help_line(out: &mut String, family: &str, escaped: &str) {
    out.push_str("# HELP ");
    out.push_str(family);
    out.push(' ');
    for c in escaped.chars() {
        if c == '"' {
            out.push_str("\\\"");
        } else {
            out.push(c);
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_lose_total_and_units_are_declared() {
        let mut out = String::new();
        header(&mut out, "x_ended_total", "Ended \"sessions\".", "counter");
        header(&mut out, "x_poll_duration_seconds", "a\\b\nc", "gauge");
        header(&mut out, "x_size_bytes", "s", "gauge");
        header(&mut out, "x_build_info", "i", "gauge");
        header(&mut out, "seconds", "no prefix, no unit", "gauge");
        assert_eq!(
            out,
            "# HELP x_ended Ended \\\"sessions\\\".\n# TYPE x_ended counter\n\
             # HELP x_poll_duration_seconds a\\\\b\\nc\n# TYPE x_poll_duration_seconds gauge\n\
             # UNIT x_poll_duration_seconds seconds\n\
             # HELP x_size_bytes s\n# TYPE x_size_bytes gauge\n# UNIT x_size_bytes bytes\n\
             # HELP x_build_info i\n# TYPE x_build_info gauge\n\
             # HELP seconds no prefix, no unit\n# TYPE seconds gauge\n"
        );
    }

    #[test]
    fn text_pages_convert_line_by_line() {
        let text = "# HELP process_cpu_seconds_total Total \"user\" and system CPU time.\n\
                    # TYPE process_cpu_seconds_total counter\n\
                    process_cpu_seconds_total 1.25\n\
                    # HELP b_info Build.\n\
                    # TYPE b_info gauge\n\
                    b_info{version=\"1\"} 1\n\
                    # a comment\n\
                    # HELP u Untyped.\n\
                    # TYPE u untyped\n\
                    u 2\n";
        let mut out = String::new();
        convert_text(text, &mut out);
        assert_eq!(
            out,
            "# HELP process_cpu_seconds Total \\\"user\\\" and system CPU time.\n\
             # TYPE process_cpu_seconds counter\n\
             # UNIT process_cpu_seconds seconds\n\
             process_cpu_seconds_total 1.25\n\
             # HELP b_info Build.\n# TYPE b_info gauge\nb_info{version=\"1\"} 1\n\
             # HELP u Untyped.\n# TYPE u unknown\nu 2\n"
        );
    }
}
