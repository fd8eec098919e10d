//! `upload_session_exporter sessions`: poll once and print what is happening
//! per target, session by session — for an admin who wants to see what is
//! stuck right now without Grafana.

use std::fmt::Write as _;

use crate::config::{Config, TargetConfig};
use crate::model::{now_millis, Session, SessionState, UnixMillis};
use crate::poller::history::{History, Judgement, Rules};
use crate::poller::Source;
use crate::upstream::RequestLimiter;

/// The report of one target.
#[derive(Debug)]
pub struct TargetReport {
    /// Target name.
    pub target: String,
    /// The table, or why the target could not be polled.
    pub result: Result<String, String>,
}

/// Polls the targets (all, or the one named) once and renders a table each.
pub async fn sessions(config: &Config, only: Option<&str>) -> Result<Vec<TargetReport>, String> {
    let targets: Vec<&TargetConfig> = config
        .targets
        .iter()
        .filter(|t| only.is_none_or(|n| t.name == n))
        .collect();
    if targets.is_empty() {
        let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
        return Err(format!(
            "no target named {:?}; the configured targets are: {}",
            only.unwrap_or(""),
            names.join(", ")
        ));
    }
    let limiter = RequestLimiter::new(config.exporter.max_concurrent_requests);
    let mut reports = Vec::new();
    for t in targets {
        let result = match Source::new(t, &limiter) {
            Ok(mut source) => {
                let now = now_millis();
                let r = source.fetch(now).await;
                source.close().await;
                r.map(|sessions| render(t, &sessions, now))
                    .map_err(|e| format!("{} ({})", e, e.reason()))
            }
            Err(e) => Err(e.to_string()),
        };
        reports.push(TargetReport {
            target: t.name.clone(),
            result,
        });
    }
    Ok(reports)
}

/// The table of one target's sessions, most urgent first.
pub fn render(t: &TargetConfig, sessions: &[Session], now: UnixMillis) -> String {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let rules = Rules {
        stall_after_ms: ms(t.stall_after),
        at_risk_horizon_ms: ms(t.at_risk_horizon),
    };
    let (judgements, _) = History::default().update(sessions, now, rules);
    let mut rows: Vec<(&Session, Judgement)> = sessions.iter().zip(judgements).collect();
    // Urgent first: stalled/at risk, then by expiry.
    rows.sort_by_key(|(s, j)| (!(j.stalled || j.at_risk), s.expires.unwrap_or(i64::MAX)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} session(s)",
        t.name,
        t.kind.label(),
        sessions.len()
    );
    if sessions.is_empty() {
        return out;
    }
    let vault = t.kind.label() == "vault";
    let header: Vec<&str> = if vault {
        vec![
            "OWNER",
            "FILE",
            "PROGRESS",
            "UPLOADED",
            "SIZE",
            "RATE",
            "ETA",
            "EXPIRES IN",
            "STATE",
        ]
    } else {
        vec![
            "OWNER",
            "SESSION",
            "FILES",
            "FINISHED",
            "FAILED",
            "PENDING",
            "EXPIRES IN",
            "STATE",
        ]
    };
    let mut table: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for (s, j) in rows {
        let owner = match &s.owner_name {
            Some(n) => format!("{n} ({})", s.owner_id),
            None => s.owner_id.clone(),
        };
        let expires = s
            .expires
            .map_or_else(|| "-".into(), |e| short_duration(e.saturating_sub(now)));
        let state = state_word(s, &j);
        if vault {
            let size = s.size.unwrap_or(0);
            let progress = if size > 0 {
                format!("{:.1}%", s.uploaded as f64 * 100.0 / size as f64)
            } else {
                "-".into()
            };
            let remaining = size.saturating_sub(s.uploaded);
            let (rate, eta) = match j.rate {
                Some(r) if r > 0.0 => (
                    format!("{}/s", bytes(r as u64)),
                    if remaining == 0 {
                        "-".into()
                    } else {
                        short_duration((remaining as f64 / r * 1000.0) as i64)
                    },
                ),
                _ => (
                    "-".into(),
                    if remaining == 0 {
                        "-".into()
                    } else {
                        "never".into()
                    },
                ),
            };
            table.push(vec![
                owner,
                s.path.clone().unwrap_or_default(),
                progress,
                bytes(s.uploaded),
                bytes(size),
                rate,
                eta,
                expires,
                state,
            ]);
        } else {
            let f = s.files.unwrap_or_default();
            let known = s.files.is_some();
            let n = |v: u64| if known { v.to_string() } else { "-".into() };
            table.push(vec![
                owner,
                s.id.clone(),
                n(f.total),
                n(f.finished),
                n(f.failed),
                n(f.pending()),
                expires,
                state,
            ]);
        }
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in &table {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

fn state_word(s: &Session, j: &Judgement) -> String {
    let mut words = Vec::new();
    if j.stalled {
        words.push("stalled");
    }
    if j.at_risk {
        words.push("at risk");
    }
    if j.awaiting_commit {
        words.push("awaiting commit");
    }
    if words.is_empty() {
        words.push(s.state.as_str());
    } else if s.state != SessionState::Active {
        words.insert(0, s.state.as_str());
    }
    words.join(", ")
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// Milliseconds as "2d 3h", "5m 10s", "-1h 2m" (past).
pub fn short_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "" };
    let secs = ms.unsigned_abs() / 1000;
    let (d, h, m, s) = (
        secs / 86400,
        secs % 86400 / 3600,
        secs % 3600 / 60,
        secs % 60,
    );
    let body = if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(40 * 1024 * 1024 * 1024), "40.0 GiB");
        assert_eq!(short_duration(93_600_000 + 120_000), "1d 2h");
        assert_eq!(short_duration(3_720_000), "1h 2m");
        assert_eq!(short_duration(65_000), "1m 5s");
        assert_eq!(short_duration(-7_200_000), "-2h 0m");
    }
}
