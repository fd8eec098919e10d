//! Joins the targets' fragments and the exporter's own metrics into one
//! exposition, compresses it once, and hands it to the HTTP server. Scrapes
//! only copy an `Arc` of prepared bytes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::sync::{watch, Notify};

use super::{text, Family, Kind, TargetFragment};

/// A prepared `/metrics` body in both encodings.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// The text exposition.
    pub plain: Bytes,
    /// The same, gzip-compressed.
    pub gzip: Bytes,
}

/// Where poll tasks drop their fragments and the server picks up the page.
pub struct Hub {
    fragments: Mutex<BTreeMap<String, Arc<TargetFragment>>>,
    changed: Notify,
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

impl Hub {
    /// A hub with the exporter's own metrics registered.
    pub fn new() -> Arc<Hub> {
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
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
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
        Arc::new(Hub {
            fragments: Mutex::new(BTreeMap::new()),
            changed: Notify::new(),
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
        self.changed.notify_one();
    }

    /// Replaces a target's fragment and wakes the publisher.
    pub fn publish(&self, target: &str, fragment: TargetFragment) {
        if let Ok(mut f) = self.fragments.lock() {
            f.insert(target.to_string(), Arc::new(fragment));
        }
        self.changed.notify_one();
    }

    /// Forgets a target (after a reload removed it).
    pub fn remove(&self, target: &str) {
        if let Ok(mut f) = self.fragments.lock() {
            f.remove(target);
        }
        self.changed.notify_one();
    }

    /// A receiver of every new exposition (the server's view).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Exposition>> {
        self.tx.subscribe()
    }

    /// Builds the page from the current fragments, now.
    pub fn assemble(&self) -> Exposition {
        let fragments: Vec<Arc<TargetFragment>> = match self.fragments.lock() {
            Ok(f) => f.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut out = String::with_capacity(
            fragments
                .iter()
                .map(|f| {
                    Family::ALL
                        .iter()
                        .map(|&fam| f.family(fam).len())
                        .sum::<usize>()
                })
                .sum::<usize>()
                + 16 * 1024,
        );
        for &family in Family::ALL {
            if fragments.iter().all(|f| f.family(family).is_empty()) {
                continue;
            }
            let kind = match family.kind() {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            text::header(&mut out, family.name(), family.help(), kind);
            for f in &fragments {
                out.push_str(f.family(family));
            }
        }
        let mut own = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut own) {
            tracing::warn!(error = %e, "cannot encode the exporter's own metrics");
        }
        let mut plain = out.into_bytes();
        plain.extend_from_slice(&own);
        let gzip = gzip(&plain);
        Exposition {
            plain: Bytes::from(plain),
            gzip,
        }
    }

    /// Assembles and publishes to the server right away.
    pub fn flush(&self) {
        self.tx.send_replace(Arc::new(self.assemble()));
    }

    /// Republishes whenever a fragment changes; bursts of polls finishing
    /// together coalesce into one assembly. Runs until the task is dropped.
    pub async fn run_publisher(self: Arc<Self>) {
        loop {
            self.changed.notified().await;
            let hub = Arc::clone(&self);
            // Assembly and compression are CPU work: keep them off the
            // reactor threads that serve scrapes.
            match tokio::task::spawn_blocking(move || hub.assemble()).await {
                Ok(e) => {
                    self.tx.send_replace(Arc::new(e));
                }
                Err(e) => tracing::error!(error = %e, "assembling the exposition failed"),
            }
        }
    }
}

fn gzip(data: &[u8]) -> Bytes {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 6 + 64), Compression::new(6));
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
        let hub = Hub::new();
        for t in ["b", "a"] {
            let mut f = TargetFragment::new();
            f.sample(
                Family::TargetUp,
                &[("target", t), ("kind", "vault")],
                Value::U(1),
            );
            f.sample(Family::PollDuration, &[("target", t)], Value::F(0.5));
            hub.publish(t, f);
        }
        let e = hub.assemble();
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

        hub.remove("a");
        let text = String::from_utf8(hub.assemble().plain.to_vec()).unwrap();
        assert!(!text.contains("target=\"a\""));
        assert!(text.contains("target=\"b\""));
    }
}
