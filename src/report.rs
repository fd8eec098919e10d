//! `upload_session_exporter sessions`: poll once and print what is happening
//! per target, session by session — for an admin who wants to see what is
//! stuck right now without Grafana.

use std::fmt::Write as _;

use crate::config::{Config, TargetConfig};
use crate::model::{now_millis, Session, UnixMillis};
use crate::poller::history::{History, Rules};
use crate::poller::Source;
pub use crate::sessions::{bytes, short_duration};
use crate::sessions::{clean, cut_end, cut_start, percent, Row, MAX_TEXT_CHARS};
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

/// Width of the table when the terminal's is not known (`COLUMNS`).
pub const DEFAULT_WIDTH: usize = 100;

/// The table width: `COLUMNS` when the shell exports it, else 100.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|w| (40..=1000).contains(w))
        .unwrap_or(DEFAULT_WIDTH)
}

/// The table of one target's sessions, most urgent first, fitted to the
/// terminal's width (100 columns unless `COLUMNS` says otherwise).
pub fn render(t: &TargetConfig, sessions: &[Session], now: UnixMillis) -> String {
    render_width(t, sessions, now, terminal_width())
}

/// How a column gives way when the table is too wide.
#[derive(Clone, Copy, PartialEq)]
enum Fit {
    /// Always shown at its natural width.
    Keep,
    /// Shown unless the table does not fit; dropped in increasing order.
    Drop(u8),
    /// Takes what is left, cut at the end down to this width.
    CutEnd(usize),
    /// Takes what is left, cut at the start (paths keep their file name).
    CutStart(usize),
}

/// [`render`] for a given width.
pub fn render_width(
    t: &TargetConfig,
    sessions: &[Session],
    now: UnixMillis,
    width: usize,
) -> String {
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let rules = Rules {
        stall_after_ms: ms(t.stall_after),
        at_risk_horizon_ms: ms(t.at_risk_horizon),
    };
    let (judgements, _) = History::default().update(sessions, now, rules);
    let kind = t.kind_name();
    let mut rows: Vec<Row> = sessions
        .iter()
        .zip(judgements)
        .map(|(s, j)| Row::new(&t.name, kind, s, j, now))
        .collect();
    rows.sort_by(|a, b| a.urgency().cmp(&b.urgency()));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}): {} session(s)",
        clean(&cut_end(&t.name, MAX_TEXT_CHARS)),
        kind,
        sessions.len()
    );
    if sessions.is_empty() {
        return out;
    }
    let dash = || "-".to_string();
    let expires = |r: &Row| r.expires_in_ms.map_or_else(dash, short_duration);
    let (columns, cells): (Vec<(&str, Fit)>, Vec<Vec<String>>) = if t.kind.measure().counts_bytes()
    {
        let cols = vec![
            ("OWNER", Fit::CutEnd(12)),
            ("FILE", Fit::CutStart(24)),
            ("PROGRESS", Fit::Keep),
            ("UPLOADED", Fit::Drop(1)),
            ("SIZE", Fit::Drop(0)),
            ("RATE", Fit::Drop(2)),
            ("ETA", Fit::Keep),
            ("EXPIRES IN", Fit::Keep),
            ("STATE", Fit::Keep),
        ];
        let cells = rows
            .iter()
            .map(|r| {
                let s = r.session;
                vec![
                    r.owner_label(),
                    s.path.clone().unwrap_or_default(),
                    r.progress.map_or_else(dash, percent),
                    bytes(s.uploaded),
                    s.size.map_or_else(dash, bytes),
                    r.rate
                        .map_or_else(dash, |v| format!("{}/s", bytes(v as u64))),
                    r.eta_ms.map_or_else(dash, short_duration),
                    expires(r),
                    r.state_label(),
                ]
            })
            .collect();
        (cols, cells)
    } else {
        let cols = vec![
            ("OWNER", Fit::CutEnd(16)),
            ("SESSION", Fit::CutEnd(13)),
            ("FILES", Fit::Keep),
            ("FINISHED", Fit::Keep),
            ("FAILED", Fit::Keep),
            ("PENDING", Fit::Keep),
            ("EXPIRES IN", Fit::Keep),
            ("STATE", Fit::Keep),
        ];
        let cells = rows
            .iter()
            .map(|r| {
                let s = r.session;
                let f = s.files.unwrap_or_default();
                let n = |v: u64| {
                    if s.files.is_some() {
                        v.to_string()
                    } else {
                        dash()
                    }
                };
                vec![
                    r.owner_label(),
                    s.id.clone(),
                    n(f.total),
                    n(f.finished),
                    n(f.failed),
                    n(f.pending()),
                    expires(r),
                    r.state_label(),
                ]
            })
            .collect();
        (cols, cells)
    };
    table(&mut out, &columns, cells, width);
    out
}

/// Writes a table fitted to `width`: upstream text is cleaned of control
/// characters, droppable columns go (lowest first) until the cut columns
/// fit at their minimum, and the cut columns share what is left. Padding is
/// written by hand: a formatter width taken from upstream data can panic.
fn table(out: &mut String, columns: &[(&str, Fit)], cells: Vec<Vec<String>>, width: usize) {
    let cells: Vec<Vec<String>> = cells
        .into_iter()
        .map(|row| {
            row.iter()
                .zip(columns)
                .map(|(c, (_, fit))| match fit {
                    Fit::CutStart(_) => clean(&cut_start(c, MAX_TEXT_CHARS)),
                    _ => clean(&cut_end(c, MAX_TEXT_CHARS)),
                })
                .collect()
        })
        .collect();
    let natural: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(c, (h, _))| {
            cells
                .iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .chain([h.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let min_of = |c: usize| match columns[c].1 {
        Fit::CutEnd(m) | Fit::CutStart(m) => natural[c].min(m.max(columns[c].0.len())),
        _ => natural[c],
    };
    let needed = |shown: &[usize]| {
        2 + shown.iter().map(|&c| min_of(c)).sum::<usize>() + 2 * shown.len().saturating_sub(1)
    };
    let mut shown: Vec<usize> = (0..columns.len()).collect();
    while needed(&shown) > width {
        let victim = shown
            .iter()
            .enumerate()
            .filter_map(|(i, &c)| match columns[c].1 {
                Fit::Drop(p) => Some((p, i)),
                _ => None,
            })
            .min();
        match victim {
            Some((_, i)) => {
                shown.remove(i);
            }
            None => break,
        }
    }
    // What is left goes to the cut columns, in column order.
    let mut widths: Vec<usize> = shown.iter().map(|&c| min_of(c)).collect();
    let mut spare = width.saturating_sub(needed(&shown));
    for (i, &c) in shown.iter().enumerate() {
        if matches!(columns[c].1, Fit::CutEnd(_) | Fit::CutStart(_)) {
            let more = natural[c].saturating_sub(widths[i]).min(spare);
            widths[i] += more;
            spare -= more;
        }
    }
    let mut line = |cells: Vec<String>| {
        let mut l = String::from("  ");
        for (i, &c) in shown.iter().enumerate() {
            let w = widths[i];
            let v = cells.get(c).map_or("", |s| s.as_str());
            let v = match columns[c].1 {
                Fit::CutStart(_) => cut_start(v, w),
                _ => cut_end(v, w),
            };
            if i > 0 {
                l.push_str("  ");
            }
            let n = v.chars().count();
            l.push_str(&v);
            l.extend(std::iter::repeat_n(' ', w.saturating_sub(n)));
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for row in cells {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::deepset::DeepsetConfig;
    use crate::kinds::vault::VaultConfig;
    use crate::model::{FileCounts, SessionState};
    use crate::secret::Secret;
    use crate::settings::KindConfig;
    use std::time::Duration;

    const MIN: i64 = 60_000;
    const NOW: i64 = 1_000_000 * MIN;

    fn target(kind: Box<dyn KindConfig>) -> TargetConfig {
        TargetConfig {
            timeout: Duration::from_secs(5),
            stall_after: Duration::from_secs(1800),
            at_risk_horizon: Duration::from_secs(3600),
            max_response_bytes: 1 << 20,
            ..TargetConfig::with_defaults("t", "https://v.example.com".parse().unwrap(), kind)
        }
    }

    fn vault() -> TargetConfig {
        target(Box::new(VaultConfig::new("u", Secret::new("p"))))
    }

    fn deepset() -> TargetConfig {
        target(Box::new(DeepsetConfig::new("default", Secret::new("k"))))
    }

    /// A Vault session as the demo has them: `uploaded` of `size` bytes,
    /// the last part `idle_min` minutes ago.
    fn upload(path: &str, uploaded: u64, size: u64, idle_min: i64) -> Session {
        Session {
            id: path.into(),
            owner_id: "10001402".into(),
            owner_name: None,
            path: Some(path.into()),
            state: SessionState::Active,
            size: Some(size),
            uploaded,
            parts: 1,
            created: Some(NOW - 600 * MIN),
            expires: Some(NOW + 3 * 24 * 60 * MIN),
            last_upload: Some(NOW - idle_min * MIN),
            files: None,
        }
    }

    fn closed(id: &str, total: u64, finished: u64) -> Session {
        Session {
            id: id.into(),
            owner_id: "3b9e2c1a-5d4f-4e8a-b7c6-0a1b2c3d4e02".into(),
            owner_name: Some("Aiko Tanaka".into()),
            path: None,
            state: SessionState::Closed,
            size: None,
            uploaded: 0,
            parts: 0,
            created: Some(NOW - 48 * 60 * MIN),
            expires: Some(NOW - 23 * 60 * MIN),
            last_upload: None,
            files: Some(FileCounts {
                total,
                finished,
                failed: 0,
            }),
        }
    }

    #[test]
    fn the_vault_table_fits_100_columns() {
        let sessions = [
            upload(
                "/u10001403/Training/Investigator-Training-009.mov",
                640 << 20,
                1_400_000_000,
                45,
            ),
            upload(
                "/u10001401/Cholecap-2026/Site-Binder-002.pdf",
                4_600_000_000,
                11_600_000_000,
                1,
            ),
            upload(
                "/u10001404/eTMF-Migration/Imaging-Batch-010.zip",
                0,
                30_000_000_000,
                0,
            ),
        ];
        let out = render_width(&vault(), &sessions, NOW, 100);
        for line in out.lines() {
            assert!(
                line.chars().count() <= 100,
                "{} wide: {line}\n{out}",
                line.chars().count()
            );
        }
        let header = out.lines().nth(1).unwrap();
        assert!(
            header.contains("FILE") && header.contains("ETA") && header.contains("EXPIRES IN"),
            "{out}"
        );
        assert!(
            !header.contains("SIZE"),
            "the least useful column goes first:\n{out}"
        );
        // Paths are cut from the left: the file name stays.
        let stalled = out
            .lines()
            .find(|l| l.contains("Training-009.mov"))
            .unwrap();
        assert!(stalled.contains("…"), "{out}");
        assert!(!stalled.contains("/u10001403/Training/"), "{out}");
        // Stalled: no ETA; the new 0-byte session: no rate and no "never".
        assert!(stalled.trim_end().ends_with("stalled"), "{stalled}");
        let cols: Vec<&str> = stalled
            .split("  ")
            .filter(|c| !c.trim().is_empty())
            .collect();
        assert_eq!(
            cols[cols.len() - 3].trim(),
            "-",
            "ETA of a stalled session: {stalled}"
        );
        assert!(!out.contains("never"), "{out}");
        // A wide terminal gets every column.
        let wide = render_width(&vault(), &sessions, NOW, 200);
        assert!(wide.lines().nth(1).unwrap().contains("SIZE"), "{wide}");
        assert!(
            wide.contains("/u10001403/Training/Investigator-Training-009.mov"),
            "{wide}"
        );
    }

    #[test]
    fn closed_deepset_sessions_by_ingestion_without_negative_expiry() {
        let mut open = closed("open-1", 0, 0);
        open.state = SessionState::Open;
        open.expires = Some(NOW + 24 * 60 * MIN);
        let sessions = [
            closed("done-1", 5, 5),
            closed("pending-1", 6, 0),
            open,
            closed("half-1", 4, 2),
        ];
        let out = render_width(&deepset(), &sessions, NOW, 100);
        assert!(!out.contains(" -2"), "no negative expiry:\n{out}");
        let pos = |id: &str| out.find(id).unwrap();
        assert!(pos("open-1") < pos("pending-1"), "{out}");
        assert!(pos("pending-1") < pos("half-1"), "{out}");
        assert!(pos("half-1") < pos("done-1"), "{out}");
        let open_line = out.lines().find(|l| l.contains("open-1")).unwrap();
        assert!(open_line.contains("1d 0h"), "{open_line}");
        for line in out.lines() {
            assert!(line.chars().count() <= 100, "{line}");
        }
    }

    #[test]
    fn huge_upstream_strings_do_not_panic() {
        let huge = "x".repeat(100 * 1024);
        let mut s = upload(&format!("/u1/{huge}.bin"), 1, 2, 0);
        s.owner_name = Some(format!("{huge}\u{1b}[2J"));
        let out = render_width(&vault(), &[s.clone()], NOW, 100);
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
        assert!(!out.contains('\u{1b}'));
        let mut d = closed(&huge, 1, 0);
        d.owner_id = huge.clone();
        let out = render_width(&deepset(), &[d], NOW, 100);
        assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
        // Even an absurd terminal width pads by hand, not with a formatter
        // width.
        let out = render_width(&vault(), &[s], NOW, 1_000_000);
        assert!(out.contains(".bin"));
    }
}
