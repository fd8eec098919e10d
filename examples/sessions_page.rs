//! Time and size of the `/sessions` page and `/api/v1/sessions` for 10,000
//! sessions (see BENCHMARKS.md): `cargo run --release --example sessions_page`.
//!
//! Renders from a board as the poller publishes it: 4 Vault targets of
//! 2,000 sessions and 2 deepset workspaces of 1,000, a tenth stalled. Each
//! figure is the median of 50 renders.

use std::sync::Arc;
use std::time::Instant;

use upload_session_exporter::model::{FileCounts, Session, SessionState};
use upload_session_exporter::poller::history::Judgement;
use upload_session_exporter::sessions::{self, Board, Filter, Polled, StateFilter, TargetView};

const NOW: i64 = 1_764_000_000_000;
const MIN: i64 = 60_000;

fn vault(t: usize, i: usize) -> (Session, Judgement) {
    let size = 100_000_000 + (i as u64 * 7919) % 900_000_000;
    let s = Session {
        id: format!("v{t}-{i:06}-yYFg7jN_fZBmUD9Tj98RkL2yqtbTdIh17iy02nd5pby62oqVJLXv--"),
        owner_id: format!("{}", 10_001_400 + i % 200),
        owner_name: (i.is_multiple_of(3)).then(|| format!("Owner Number {}", i % 200)),
        path: Some(format!(
            "/u{}/Clinical-Study-{:04}/Site-Binder-{i:06}.pdf",
            10_001_400 + i % 200,
            i % 97
        )),
        state: if i.is_multiple_of(50) {
            SessionState::Expired
        } else {
            SessionState::Active
        },
        size: Some(size),
        uploaded: size / 3,
        parts: 12,
        created: Some(NOW - 600 * MIN),
        expires: Some(NOW + (i as i64 % 4000) * MIN),
        last_upload: Some(NOW - (i as i64 % 90) * MIN),
        files: None,
    };
    let j = Judgement {
        stalled: i.is_multiple_of(10),
        at_risk: i.is_multiple_of(17),
        awaiting_commit: false,
        rate: Some(1024.0 * (i % 500) as f64),
    };
    (s, j)
}

fn deepset(t: usize, i: usize) -> (Session, Judgement) {
    let s = Session {
        id: format!("3b9e2c1a-5d4f-4e8a-b7c6-{t:02}{i:010}"),
        owner_id: format!("6c3f7e7a-2b1d-4d8e-9f4a-1a2b3c4d{:04}", i % 50),
        owner_name: Some(format!("Given{} Family", i % 50)),
        path: None,
        state: if i.is_multiple_of(4) {
            SessionState::Open
        } else {
            SessionState::Closed
        },
        size: None,
        uploaded: 0,
        parts: 0,
        created: Some(NOW - 600 * MIN),
        expires: Some(NOW + 600 * MIN),
        last_upload: None,
        files: Some(FileCounts {
            total: 6,
            finished: (i % 7) as u64 % 6,
            failed: 0,
        }),
    };
    let j = Judgement {
        stalled: i.is_multiple_of(10),
        ..Judgement::default()
    };
    (s, j)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let board = Board::new();
    let mut total = 0;
    for (t, (kind, n)) in [
        ("vault", 2000),
        ("vault", 2000),
        ("vault", 2000),
        ("vault", 2000),
        ("deepset", 1000),
        ("deepset", 1000),
    ]
    .into_iter()
    .enumerate()
    {
        let (sessions, judgements): (Vec<Session>, Vec<Judgement>) = (0..n)
            .map(|i| {
                if kind == "vault" {
                    vault(t, i)
                } else {
                    deepset(t, i)
                }
            })
            .unzip();
        total += sessions.len();
        board.publish(TargetView {
            name: format!("{kind}-{t}"),
            kind,
            measure: if kind == "vault" {
                upload_session_exporter::model::Measure::SizedBytes
            } else {
                upload_session_exporter::model::Measure::Files
            },
            up: true,
            polled: true,
            last_success: Some(NOW - 5_000),
            last_error: None,
            polled_sessions: Some(Arc::new(Polled {
                at: NOW - 5_000,
                sessions,
                judgements,
            })),
        });
    }
    println!("{total} sessions on 6 targets; median of 50 renders each");
    let cases: [(&str, Filter, usize); 4] = [
        ("page 1, no filter", Filter::default(), 1),
        ("page 20 (last), no filter", Filter::default(), 20),
        (
            "state=stalled",
            Filter {
                states: vec![StateFilter::Stalled],
                ..Filter::default()
            },
            1,
        ),
        (
            "target + owner_id",
            Filter {
                targets: vec!["vault-0".into()],
                owners: vec!["10001407".into()],
                ..Filter::default()
            },
            1,
        ),
    ];
    for (name, filter, page) in cases {
        let (mut html_ms, mut json_ms) = (Vec::new(), Vec::new());
        let (mut html_len, mut json_len, mut rows) = (0, 0, 0);
        for _ in 0..50 {
            let t = Instant::now();
            let views = board.snapshot();
            let sel = sessions::select(&views, &filter, page, sessions::PAGE_ROWS, NOW);
            let html = sessions::html::render(&sel, &filter, &views, NOW);
            html_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            html_len = html.len();
            rows = sel.rows.len();
            let t = Instant::now();
            let views = board.snapshot();
            let sel = sessions::select(&views, &filter, page, sessions::PAGE_ROWS, NOW);
            let json = sessions::json::render(&sel, &filter, NOW);
            json_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            json_len = json.len();
        }
        println!(
            "{name:<28} rows {rows:>4}  HTML {:>6.2} ms {:>7} B  JSON {:>6.2} ms {:>7} B",
            median(html_ms),
            html_len,
            median(json_ms),
            json_len
        );
    }
}
