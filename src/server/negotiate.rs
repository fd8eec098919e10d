//! Picks the exposition format from the `Accept` header, as client_golang's
//! `expfmt.Negotiate` does: OpenMetrics 1.0 when the scraper prefers it
//! (Prometheus lists `application/openmetrics-text; version=1.0.0` first),
//! else the 0.0.4 text format, which is also the answer to anything else
//! (no header, `*/*`, or only formats not served here).

/// The formats `/metrics` is prepared in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4 (the default).
    Text,
    /// OpenMetrics text 1.0.0.
    OpenMetrics,
}

/// The format to serve for these `Accept` header values.
pub fn format<'a>(accept: impl IntoIterator<Item = &'a str>) -> Format {
    // (quality, specificity, position) of the best range for each format;
    // the higher quality wins, then the more specific range, then the one
    // listed first.
    let mut best: Option<(f32, u8, std::cmp::Reverse<usize>, Format)> = None;
    let ranges = accept.into_iter().flat_map(|v| v.split(','));
    for (pos, range) in ranges.enumerate() {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut q = 1.0_f32;
        let mut version = None;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches('"');
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => {
                    q = v
                        .parse()
                        .ok()
                        .filter(|q: &f32| q.is_finite())
                        .unwrap_or(0.0)
                }
                "version" => version = Some(v.to_string()),
                _ => {}
            }
        }
        if q <= 0.0 {
            continue;
        }
        let (format, specificity) = match (media.as_str(), version.as_deref()) {
            // 0.0.1 is the same syntax as 1.0.0; the response's
            // Content-Type says which one it is.
            ("application/openmetrics-text", Some("1.0.0" | "0.0.1")) => (Format::OpenMetrics, 3),
            ("application/openmetrics-text", None) => (Format::OpenMetrics, 2),
            ("text/plain", Some("0.0.4")) => (Format::Text, 3),
            ("text/plain", None) => (Format::Text, 2),
            ("text/*", _) => (Format::Text, 1),
            ("*/*", _) => (Format::Text, 0),
            _ => continue,
        };
        let candidate = (q, specificity, std::cmp::Reverse(pos), format);
        if best.is_none_or(|b| (b.0, b.1, b.2) < (q, specificity, std::cmp::Reverse(pos))) {
            best = Some(candidate);
        }
    }
    best.map_or(Format::Text, |b| b.3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(accept: &str) -> Format {
        format([accept])
    }

    #[test]
    fn what_prometheus_sends() {
        // Prometheus 2.42 (Debian bookworm) by default.
        assert_eq!(
            f("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
        // Prometheus 3 by default (protobuf first: not served here).
        assert_eq!(
            f("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            Format::OpenMetrics
        );
        // scrape_protocols: [PrometheusText0.0.4]
        assert_eq!(f("text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Format::Text);
        // scrape_protocols: [OpenMetricsText1.0.0]
        assert_eq!(
            f("application/openmetrics-text;version=1.0.0;q=0.5,*/*;q=0.1"),
            Format::OpenMetrics
        );
    }

    #[test]
    fn quality_then_specificity_then_order() {
        assert_eq!(format([]), Format::Text, "no header: text");
        assert_eq!(f("*/*"), Format::Text);
        assert_eq!(f("application/json"), Format::Text, "nothing served fits");
        assert_eq!(
            f("text/plain;q=0.9, application/openmetrics-text"),
            Format::OpenMetrics
        );
        assert_eq!(
            f("application/openmetrics-text;q=0.5, text/plain"),
            Format::Text
        );
        assert_eq!(
            f("application/openmetrics-text;version=1.0.0;q=0, text/plain;q=0.1"),
            Format::Text,
            "q=0 refuses"
        );
        assert_eq!(
            f("application/openmetrics-text;version=2.0.0, text/plain;q=0.1"),
            Format::Text,
            "a version not served"
        );
        assert_eq!(
            f("*/*, application/openmetrics-text"),
            Format::OpenMetrics,
            "the specific range beats the wildcard"
        );
        assert_eq!(
            f("Application/OpenMetrics-Text; Version=\"1.0.0\""),
            Format::OpenMetrics
        );
        assert_eq!(
            format(["text/plain;q=0.2", "application/openmetrics-text;q=0.3"]),
            Format::OpenMetrics,
            "several header lines"
        );
        assert_eq!(
            f("application/openmetrics-text;q=NaN, text/plain;q=0.1"),
            Format::Text
        );
    }
}
