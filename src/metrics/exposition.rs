//! Joins the targets' fragments and the exporter's own metrics into one
//! exposition, compresses it once, and hands it to the HTTP server. Scrapes
//! only copy an `Arc` of prepared bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::sync::{watch, Notify};

use super::{openmetrics, text, Family, Kind, TargetFragment};

/// A prepared `/metrics` body in both formats, each plain and compressed.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// The text exposition (format 0.0.4).
    pub plain: Bytes,
    /// The same, gzip-compressed.
    pub gzip: Bytes,
    /// A sealed in-kernel copy of `gzip`, which plain-TCP scrapes are sent
    /// from without copying (`crate::metrics::memfd`, sent by `server::sendfile`); `None` where
    /// unsupported.
    pub gzip_file: Option<Arc<std::fs::File>>,
    /// The same samples in OpenMetrics 1.0 (see [`super::openmetrics`]);
    /// empty before the first assembly.
    pub openmetrics: Bytes,
    /// `openmetrics`, gzip-compressed.
    pub openmetrics_gzip: Bytes,
    /// A sealed in-kernel copy of `openmetrics_gzip`, like `gzip_file`:
    /// Prometheus asks for OpenMetrics first, so this is what it gets.
    pub openmetrics_gzip_file: Option<Arc<std::fs::File>>,
}

/// Shortest time between the starts of two assemblies. Polls that finish
/// within it are published together, so a fleet whose targets finish one
/// after the other costs one assembly (and one compression) per second at
/// most, not one per target.
pub const MIN_PUBLISH_GAP: Duration = Duration::from_secs(1);

/// How long the publisher lets a burst of changes settle: it assembles once
/// no change came for this long, or [`MAX_SETTLE`] after the burst's first
/// change. Targets with one interval poll together (see the poller), so a
/// fleet's cycle is usually one burst and one assembly.
pub const SETTLE: Duration = Duration::from_millis(100);

/// The longest a change waits for its burst to settle: a page is never more
/// than this (plus an assembly) behind the newest poll.
pub const MAX_SETTLE: Duration = Duration::from_secs(1);

/// Where poll tasks drop their fragments and the server picks up the page.
pub struct PagePublisher {
    fragments: Mutex<BTreeMap<String, Arc<TargetFragment>>>,
    changed: Notify,
    /// Bumped by every change; the publisher skips an assembly when nothing
    /// changed since the last one.
    generation: AtomicU64,
    /// Pages assembled so far.
    assemblies: AtomicU64,
    tx: watch::Sender<Arc<Exposition>>,
    registry: Registry,
    reload_ok: Option<IntGauge>,
    reload_time: Option<Gauge>,
}

/// Build information baked in at compile time.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision at build time (`unknown` outside a checkout).
pub const REVISION: &str = match option_env!("UPLOAD_SESSION_EXPORTER_REVISION") {
    Some(r) => r,
    None => "unknown",
};

impl PagePublisher {
    /// A publisher with the exporter's own metrics registered.
    pub fn new() -> Arc<PagePublisher> {
        let registry = Registry::new();
        if let Ok(info) = IntGaugeVec::new(
            Opts::new(
                "upload_session_exporter_build_info",
                "Build information of upload_session_exporter; the value is always 1.",
            ),
            &["version", "revision"],
        ) {
            info.with_label_values(&[VERSION, REVISION]).set(1);
            let _ = registry.register(Box::new(info));
        }
        #[cfg(target_os = "linux")]
        {
            // process_* metrics, as every Prometheus client library exports.
            if let Some(p) = super::process::Process::for_self() {
                let _ = registry.register(Box::new(p));
            }
        }
        let reload_ok = IntGauge::new(
            "upload_session_exporter_config_last_reload_successful",
            "1 if the last configuration reload succeeded (the running configuration is the file's), else 0.",
        )
        .ok()
        .filter(|g| registry.register(Box::new(g.clone())).is_ok());
        let reload_time = Gauge::new(
            "upload_session_exporter_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration load (start or reload), Unix seconds.",
        )
        .ok()
        .filter(|g| registry.register(Box::new(g.clone())).is_ok());
        let (tx, _) = watch::channel(Arc::new(Exposition::default()));
        Arc::new(PagePublisher {
            fragments: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
            generation: AtomicU64::new(0),
            assemblies: AtomicU64::new(0),
            tx,
            registry,
            reload_ok,
            reload_time,
        })
    }

    /// Records the outcome of a configuration load and republishes.
    pub fn set_reload_result(&self, ok: bool) {
        if let Some(g) = &self.reload_ok {
            g.set(i64::from(ok));
        }
        if ok {
            if let Some(g) = &self.reload_time {
                g.set(crate::model::now_millis() as f64 / 1000.0);
            }
        }
        self.touch();
    }

    /// Notes a change and wakes the publisher.
    fn touch(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_one();
    }

    /// Replaces a target's fragment and wakes the publisher.
    pub fn publish(&self, target: &str, fragment: TargetFragment) {
        if let Ok(mut f) = self.fragments.lock() {
            f.insert(target.to_string(), Arc::new(fragment));
        }
        self.touch();
    }

    /// Forgets a target (after a reload removed it).
    pub fn remove(&self, target: &str) {
        if let Ok(mut f) = self.fragments.lock() {
            f.remove(target);
        }
        self.touch();
    }

    /// A receiver of every new exposition (the server's view).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Exposition>> {
        self.tx.subscribe()
    }

    /// Pages assembled (and compressed) so far.
    pub fn assemblies(&self) -> u64 {
        self.assemblies.load(Ordering::Relaxed)
    }

    /// Builds the page from the current fragments, now.
    pub fn assemble(&self) -> Exposition {
        self.assemblies.fetch_add(1, Ordering::Relaxed);
        let fragments: Vec<Arc<TargetFragment>> = match self.fragments.lock() {
            Ok(f) => f.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let capacity = fragments
            .iter()
            .map(|f| {
                Family::ALL
                    .iter()
                    .map(|&fam| f.family(fam).len())
                    .sum::<usize>()
            })
            .sum::<usize>()
            + 16 * 1024;
        let mut out = String::with_capacity(capacity);
        // The OpenMetrics page: the same sample bytes under other metadata.
        let mut om = String::with_capacity(capacity);
        for &family in Family::ALL {
            if fragments.iter().all(|f| f.family(family).is_empty()) {
                continue;
            }
            let kind = match family.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            text::header(&mut out, family.name(), family.help(), kind);
            openmetrics::header(&mut om, family.name(), family.help(), kind);
            for f in &fragments {
                out.push_str(f.family(family));
                om.push_str(f.family(family));
            }
        }
        let mut own = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut own) {
            tracing::warn!(error = %e, "cannot encode the exporter's own metrics");
        }
        // The encoder writes UTF-8; a failure leaves its part out of both.
        let own = String::from_utf8(own).unwrap_or_default();
        out.push_str(&own);
        openmetrics::convert_text(&own, &mut om);
        om.push_str(openmetrics::EOF);
        let plain = out.into_bytes();
        let gzip = gzip(&plain);
        let om = om.into_bytes();
        let om_gzip = self::gzip(&om);
        Exposition {
            plain: Bytes::from(plain),
            gzip_file: super::memfd::kernel_copy(&gzip),
            gzip,
            openmetrics: Bytes::from(om),
            openmetrics_gzip_file: super::memfd::kernel_copy(&om_gzip),
            openmetrics_gzip: om_gzip,
        }
    }

    /// Assembles and publishes to the server right away.
    pub fn flush(&self) {
        self.tx.send_replace(Arc::new(self.assemble()));
    }

    /// Republishes whenever fragments change: once a burst of changes has
    /// settled ([`SETTLE`], [`MAX_SETTLE`]), and at most once per
    /// [`MIN_PUBLISH_GAP`]. Runs until the task is dropped.
    pub async fn run_publisher(self: Arc<Self>) {
        self.publish_loop(MIN_PUBLISH_GAP, SETTLE, MAX_SETTLE).await
    }

    async fn publish_loop(self: Arc<Self>, gap: Duration, settle: Duration, max_settle: Duration) {
        let mut last_start: Option<tokio::time::Instant> = None;
        let mut published = None;
        loop {
            self.changed.notified().await;
            // Let the burst settle: wait while changes keep coming, up to
            // `max_settle` after the first.
            let cap = tokio::time::Instant::now() + max_settle;
            let mut seen = self.generation.load(Ordering::Acquire);
            loop {
                let now = tokio::time::Instant::now();
                if now >= cap {
                    break;
                }
                tokio::time::sleep_until((now + settle).min(cap)).await;
                let g = self.generation.load(Ordering::Acquire);
                if g == seen {
                    break;
                }
                seen = g;
            }
            if let Some(t) = last_start {
                // Changes arriving meanwhile join this assembly.
                tokio::time::sleep_until(t + gap).await;
            }
            // Read before assembling: a change during the assembly makes
            // the next round publish again.
            let generation = self.generation.load(Ordering::Acquire);
            if published == Some(generation) {
                continue;
            }
            last_start = Some(tokio::time::Instant::now());
            let publisher = Arc::clone(&self);
            // Assembly and compression are CPU work: keep them off the
            // reactor threads that serve scrapes.
            match tokio::task::spawn_blocking(move || publisher.assemble()).await {
                Ok(e) => {
                    self.tx.send_replace(Arc::new(e));
                    published = Some(generation);
                }
                Err(e) => tracing::error!(error = %e, "assembling the exposition failed"),
            }
        }
    }
}

/// Compression level of the prepared gzip body. Level 1 compresses the
/// fleet's 2 MB page in about 2.5 ms instead of 21 ms at level 6, for a body
/// about a quarter larger (12× instead of 16× smaller than the text): the
/// page is compressed on every publication, and scrapers barely notice
/// 35 KB more (see BENCHMARKS.md).
const GZIP_LEVEL: u32 = 1;

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 8 + 64),
        Compression::new(GZIP_LEVEL),
    );
    // Writing to a Vec cannot fail.
    if enc.write_all(data).is_err() {
        return Bytes::new();
    }
    enc.finish().map(Bytes::from).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::text::Value;
    use std::io::Read;

    #[test]
    fn families_are_grouped_across_targets() {
        let publisher = PagePublisher::new();
        for t in ["b", "a"] {
            let mut f = TargetFragment::new();
            f.sample(
                Family::TargetUp,
                &[("target", t), ("kind", "vault")],
                Value::U(1),
            );
            f.sample(Family::PollDuration, &[("target", t)], Value::F(0.5));
            publisher.publish(t, f);
        }
        let e = publisher.assemble();
        let text = String::from_utf8(e.plain.to_vec()).unwrap();
        let start = text.find("# HELP upload_session_target_up").unwrap();
        let expected = "# TYPE upload_session_target_up gauge\n\
                        upload_session_target_up{target=\"a\",kind=\"vault\"} 1\n\
                        upload_session_target_up{target=\"b\",kind=\"vault\"} 1\n\
                        # HELP upload_session_poll_duration_seconds";
        assert!(text[start..].contains(expected), "{text}");
        assert!(
            !text.contains("upload_session_sessions"),
            "empty families are left out"
        );
        assert!(text.contains("upload_session_exporter_build_info{revision="));

        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&e.gzip[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);

        publisher.remove("a");
        let text = String::from_utf8(publisher.assemble().plain.to_vec()).unwrap();
        assert!(!text.contains("target=\"a\""));
        assert!(text.contains("target=\"b\""));
    }

    #[test]
    fn the_openmetrics_page_has_the_same_samples() {
        let publisher = PagePublisher::new();
        let mut f = TargetFragment::new();
        f.sample(
            Family::TargetUp,
            &[("target", "a"), ("kind", "vault")],
            Value::U(1),
        );
        f.sample(Family::PollDuration, &[("target", "a")], Value::F(0.5));
        f.sample(
            Family::Ended,
            &[("target", "a"), ("owner_id", "7"), ("outcome", "expired")],
            Value::U(2),
        );
        publisher.publish("a", f);
        let e = publisher.assemble();
        let text = String::from_utf8(e.plain.to_vec()).unwrap();
        let om = String::from_utf8(e.openmetrics.to_vec()).unwrap();
        assert!(om.ends_with("\n# EOF\n"), "{om}");
        assert_eq!(om.matches("# EOF").count(), 1);
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
        // Counter: family without _total, samples with it.
        assert!(om.contains(
            "# TYPE upload_session_ended counter\n\
             upload_session_ended_total{target=\"a\",owner_id=\"7\",outcome=\"expired\"} 2\n"
        ));
        assert!(om.contains("# HELP upload_session_ended Sessions that stopped"));
        assert!(!om.contains("# TYPE upload_session_ended_total"));
        assert!(om.contains(
            "# TYPE upload_session_poll_duration_seconds gauge\n\
             # UNIT upload_session_poll_duration_seconds seconds\n\
             upload_session_poll_duration_seconds{target=\"a\"} 0.5\n"
        ));
        assert!(om.contains("# TYPE upload_session_target_up gauge\nupload_session_target_up{"));
        assert!(om.contains("# TYPE upload_session_exporter_build_info gauge\n"));
        #[cfg(target_os = "linux")]
        assert!(
            om.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n")
        );
        // Every sample line of one page is in the other, in the same order.
        let samples = |page: &str| -> Vec<String> {
            page.lines()
                .filter(|l| !l.starts_with('#'))
                // One gather feeds both pages, so process_* agree too.
                .map(str::to_string)
                .collect()
        };
        assert_eq!(samples(&text), samples(&om));
        assert_eq!(
            om.lines().filter(|l| l.starts_with("# TYPE")).count(),
            text.lines().filter(|l| l.starts_with("# TYPE")).count()
        );

        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&e.openmetrics_gzip[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, om);
    }

    fn fragment(target: &str) -> TargetFragment {
        let mut f = TargetFragment::new();
        f.sample(
            Family::TargetUp,
            &[("target", target), ("kind", "vault")],
            Value::U(1),
        );
        f
    }

    fn page(publisher: &PagePublisher) -> String {
        String::from_utf8(publisher.subscribe().borrow().plain.to_vec()).unwrap()
    }

    /// Waits (at most 5 s) until the published page satisfies `ok`.
    async fn published(publisher: &PagePublisher, ok: impl Fn(&str) -> bool) -> String {
        for _ in 0..500 {
            let text = page(publisher);
            if ok(&text) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("not published: {}", page(publisher));
    }

    #[tokio::test]
    async fn bursts_of_publications_coalesce() {
        let publisher = PagePublisher::new();
        let gap = Duration::from_millis(1000);
        let settle = Duration::from_millis(200);
        let publishing = tokio::spawn(Arc::clone(&publisher).publish_loop(gap, settle, gap));
        // A burst (polls finishing together), spread over 300 ms: one
        // assembly, once it settled.
        for i in 0..50 {
            publisher.publish(&format!("t{i:02}"), fragment(&format!("t{i:02}")));
            tokio::time::sleep(Duration::from_millis(6)).await;
        }
        published(&publisher, |t| t.contains("target=\"t49\"")).await;
        assert_eq!(publisher.assemblies(), 1);
        // Changes within the gap wait for it, and go out together.
        publisher.publish("late1", fragment("late1"));
        publisher.publish("late2", fragment("late2"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(publisher.assemblies(), 1, "held back until the gap ends");
        assert!(!page(&publisher).contains("late1"));
        published(&publisher, |t| t.contains("late1") && t.contains("late2")).await;
        assert_eq!(publisher.assemblies(), 2);
        // Nothing changed: no more work.
        tokio::time::sleep(gap + gap / 2).await;
        assert_eq!(publisher.assemblies(), 2);
        // After a quiet gap, a lone change goes out once it settled.
        publisher.remove("late1");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(publisher.assemblies(), 3, "published after the settle time");
        published(&publisher, |t| !t.contains("late1")).await;
        publishing.abort();
    }

    #[tokio::test]
    async fn a_steady_trickle_is_published_every_max_settle() {
        let publisher = PagePublisher::new();
        let max_settle = Duration::from_millis(500);
        let publishing = tokio::spawn(Arc::clone(&publisher).publish_loop(
            Duration::from_millis(100),
            Duration::from_millis(200),
            max_settle,
        ));
        // A change every 20 ms for 2 s never settles: the page still goes
        // out every 500 ms (the gap alone would allow one per 100 ms).
        let start = tokio::time::Instant::now();
        let mut i = 0;
        while start.elapsed() < Duration::from_secs(2) {
            publisher.publish(&format!("t{i:03}"), fragment(&format!("t{i:03}")));
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let n = publisher.assemblies();
        assert!((3..=5).contains(&n), "{n} assemblies in 2 s");
        // The last change is out within max_settle.
        let last = format!("target=\"t{:03}\"", i - 1);
        published(&publisher, |t| t.contains(&last)).await;
        assert!(start.elapsed() < Duration::from_millis(2000) + max_settle * 2);
        publishing.abort();
    }
}
