//! Criterion benchmarks of the pure parts of a poll: decoding upstream
//! pages, the analytics update, and rendering + compressing the fleet's
//! exposition. `cargo bench --bench pipeline` (see BENCHMARKS.md).
//!
//! The data is synthetic but shaped like the fleet benchmark's: Vault list
//! pages of 50 sessions over 5 owners, deepset pages of 100 sessions over
//! 10 users, 200 Vault targets and 50 deepset workspaces.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use upload_session_exporter::kinds::{deepset, vault};
use upload_session_exporter::metrics::exposition::PagePublisher;
use upload_session_exporter::model::{FileCounts, Session, SessionState};
use upload_session_exporter::poller::history::{History, Rules};
use upload_session_exporter::poller::TargetState;

const NOW: i64 = 1_760_000_000_000;
const MIN: i64 = 60_000;
const MB: u64 = 1_000_000;

/// Deterministic pseudo-random numbers (no dependency, same every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn ts(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A List Upload Sessions body as Vault (and the simulator) send it.
fn vault_page(target: usize, n: usize, rng: &mut Lcg) -> Vec<u8> {
    let mut s = String::from(r#"{"responseStatus":"SUCCESS","data":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let owner = 20_000_000 + target as u64 * 100 + (i % 5) as u64;
        let created = NOW - (rng.below(48 * 60) as i64 + 1) * MIN;
        let size = 100 * MB + rng.below(40_000) * MB;
        let uploaded = size / 100 * rng.below(100);
        s.push_str(&format!(
            r#"{{"path":"/u{owner}/batch-{}/file-{}.zip","id":"0{:015x}{:016x}","expiration_date":"{}","created_date":"{}","last_uploaded_date":"{}","owner":{owner},"uploaded_parts":{},"size":{size},"uploaded":{uploaded}}}"#,
            rng.below(100),
            rng.next(),
            target,
            i,
            ts(created + 72 * 60 * MIN),
            ts(created),
            ts(NOW - rng.below(300) as i64 * 1000),
            uploaded.div_ceil(50 * 1024 * 1024),
        ));
    }
    s.push_str("]}");
    s.into_bytes()
}

/// A deepset Get Upload Sessions page.
fn deepset_page(ws: usize, n: usize, rng: &mut Lcg) -> Vec<u8> {
    let mut s = String::from(r#"{"data":["#);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        let u = i % 10;
        let created = NOW - (rng.below(20 * 60) as i64 + 1) * MIN;
        let status = match i % 10 {
            0 | 1 => "OPEN",
            2 => "EXPIRED",
            _ => "CLOSED",
        };
        s.push_str(&format!(
            r#"{{"session_id":"{:08x}-0000-4000-8000-{:012x}","created_by":{{"user_id":"00000000-0000-4000-8000-{:012x}","given_name":"Given{u}","family_name":"Family{ws}"}},"created_at":"{}","expires_at":"{}","status":"{status}","write_mode":"KEEP"}}"#,
            ws,
            i,
            ws * 100 + u,
            ts(created),
            ts(created + 24 * 60 * MIN),
        ));
    }
    s.push_str(r#"],"has_more":true,"total":200}"#);
    s.into_bytes()
}

/// What the Vault client does with a list body: the envelope is checked
/// (responseStatus) and decoded again for `data`, entries one by one, then
/// each becomes the model.
fn decode_vault(body: &[u8]) -> Vec<Session> {
    // As the client does: the envelope once (status check, where `data`
    // is), then `data` in one pass when every entry fits.
    let env: vault::wire::Envelope = serde_json::from_slice(body).expect("envelope");
    black_box(&env.response_status);
    let data = env.data.expect("data");
    let list =
        vault::wire::Lenient::<vault::wire::UploadSession>::from_slice(data.get().as_bytes())
            .expect("list");
    list.items
        .into_iter()
        .filter_map(|s| vault::to_model(s, NOW))
        .collect()
}

fn decode_deepset(body: &[u8]) -> Vec<Session> {
    let page: deepset::wire::SessionPage = serde_json::from_slice(body).expect("page");
    page.data
        .items
        .into_iter()
        .filter_map(|s| deepset::to_model(s, NOW))
        .collect()
}

fn rules() -> Rules {
    Rules {
        stall_after_ms: 30 * MIN,
        at_risk_horizon_ms: 12 * 60 * MIN,
    }
}

fn vault_sessions(target: usize, rng: &mut Lcg) -> Vec<Session> {
    decode_vault(&vault_page(target, 50, rng))
}

/// deepset sessions with file counts, as the client returns them.
fn deepset_sessions(ws: usize, rng: &mut Lcg) -> Vec<Session> {
    let mut v = decode_deepset(&deepset_page(ws, 100, rng));
    v.extend(decode_deepset(&deepset_page(ws + 1000, 100, rng)));
    for s in &mut v {
        s.files = match s.state {
            SessionState::Open => Some(FileCounts {
                total: rng.below(5),
                finished: 0,
                failed: 0,
            }),
            SessionState::Closed => Some(FileCounts {
                total: 3,
                finished: 2 + rng.below(2),
                failed: 0,
            }),
            _ => None,
        };
    }
    v
}

/// Moves every session a little, as between two polls.
fn progress(sessions: &mut [Session], rng: &mut Lcg, now: i64) {
    for s in sessions {
        if let Some(size) = s.size {
            s.uploaded = (s.uploaded + rng.below(50) * MB).min(size);
            s.last_upload = Some(now);
        }
    }
}

/// A publisher holding the whole fleet's fragments, as after a full cycle.
fn fleet_hub(vaults: usize, workspaces: usize) -> (Arc<PagePublisher>, Vec<TargetState>) {
    let publisher = PagePublisher::new();
    let mut rng = Lcg(7);
    let mut states = Vec::new();
    for t in 0..vaults {
        let name = format!("vault-v{t:04}");
        let mut st = TargetState::new(&name, &vault::Vault, rules(), 5 * MIN);
        let mut s = vault_sessions(t, &mut rng);
        st.record_success(&s, NOW - MIN, 0.1);
        progress(&mut s, &mut rng, NOW);
        st.record_success(&s, NOW, 0.1);
        st.count_calls(vec![("auth", 1), ("list_upload_sessions", 2)]);
        publisher.publish(&name, st.render());
        states.push(st);
    }
    for w in 0..workspaces {
        let name = format!("deepset-ws{w:03}");
        let mut st = TargetState::new(&name, &deepset::Deepset, rules(), 5 * MIN);
        let s = deepset_sessions(w, &mut rng);
        st.record_success(&s, NOW, 1.5);
        st.count_calls(vec![
            ("list_upload_sessions", 6),
            ("list_session_files", 40),
            ("get_session_status", 10),
        ]);
        publisher.publish(&name, st.render());
        states.push(st);
    }
    (publisher, states)
}

fn bench_decode(c: &mut Criterion) {
    let mut rng = Lcg(1);
    let vault_body = vault_page(3, 50, &mut rng);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(50));
    g.bench_function("vault_list_page_50_sessions", |b| {
        b.iter(|| decode_vault(black_box(&vault_body)))
    });
    let deepset_body = deepset_page(3, 100, &mut rng);
    g.throughput(Throughput::Elements(100));
    g.bench_function("deepset_page_100_sessions", |b| {
        b.iter(|| decode_deepset(black_box(&deepset_body)))
    });
    g.finish();
}

fn bench_analytics(c: &mut Criterion) {
    let mut rng = Lcg(2);
    let first = vault_sessions(5, &mut rng);
    let mut second = first.clone();
    progress(&mut second, &mut rng, NOW + MIN);
    let mut g = c.benchmark_group("analytics");
    g.throughput(Throughput::Elements(50));
    g.bench_function("history_update_vault_target_50", |b| {
        b.iter_batched(
            || {
                let mut h = History::default();
                h.update(&first, NOW, rules());
                h
            },
            |mut h| h.update(black_box(&second), NOW + MIN, rules()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("record_success_vault_target_50", |b| {
        b.iter_batched(
            || {
                let mut t = TargetState::new("vault-v0005", &vault::Vault, rules(), 5 * MIN);
                t.record_success(&first, NOW, 0.1);
                t
            },
            |mut t| {
                t.record_success(black_box(&second), NOW + MIN, 0.1);
                t
            },
            BatchSize::SmallInput,
        )
    });
    let ds = deepset_sessions(4, &mut rng);
    g.throughput(Throughput::Elements(ds.len() as u64));
    g.bench_function("record_success_deepset_workspace_200", |b| {
        b.iter_batched(
            || {
                let mut t = TargetState::new("deepset-ws004", &deepset::Deepset, rules(), 5 * MIN);
                t.record_success(&ds, NOW, 0.1);
                t
            },
            |mut t| {
                t.record_success(black_box(&ds), NOW + MIN, 0.1);
                t
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn bench_render(c: &mut Criterion) {
    let (publisher, states) = fleet_hub(200, 50);
    let mut g = c.benchmark_group("render");
    g.bench_function("render_vault_target_5_owners", |b| {
        b.iter(|| black_box(&states[0]).render())
    });
    g.sample_size(20);
    g.bench_function("assemble_and_gzip_fleet_200_vaults_50_workspaces", |b| {
        b.iter(|| publisher.assemble())
    });
    // The steady state: one target's new fragment, then the page again.
    g.bench_function("publish_one_target_then_assemble_fleet", |b| {
        b.iter(|| {
            publisher.publish("vault-v0000", states[0].render());
            publisher.assemble()
        })
    });
    g.finish();
    let e = publisher.assemble();
    eprintln!(
        "fleet exposition: {} bytes plain, {} bytes gzip",
        e.plain.len(),
        e.gzip.len()
    );
}

criterion_group!(benches, bench_decode, bench_analytics, bench_render);
criterion_main!(benches);
