//! `process_*` metrics, as every Prometheus client library exports them.
//!
//! The prometheus crate's collector provides them, except that it rounds
//! `process_cpu_seconds_total` down to whole seconds (an integer counter),
//! so `rate()` over it comes in steps. The kernel counts CPU time in clock
//! ticks (usually 1/100 s); this module replaces that one family with the
//! tick-precise value, as client_golang reports it.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::process_collector::ProcessCollector;
use prometheus::{proto, Counter};

const CPU: &str = "process_cpu_seconds_total";

/// The crate's process collector with a tick-precise CPU counter.
pub struct Process {
    inner: ProcessCollector,
    cpu: Counter,
    /// Serializes collections: the counter only moves forward by the
    /// difference to the kernel's total.
    lock: Mutex<()>,
}

impl Process {
    /// The collector of this process, or `None` if the counter cannot be
    /// created.
    pub fn for_self() -> Option<Process> {
        let cpu = Counter::new(CPU, "Total user and system CPU time spent in seconds.").ok()?;
        Some(Process {
            inner: ProcessCollector::for_self(),
            cpu,
            lock: Mutex::new(()),
        })
    }
}

impl Collector for Process {
    fn desc(&self) -> Vec<&Desc> {
        let mut d: Vec<&Desc> = self
            .inner
            .desc()
            .into_iter()
            .filter(|d| d.fq_name != CPU)
            .collect();
        d.extend(self.cpu.desc());
        d
    }

    fn collect(&self) -> Vec<proto::MetricFamily> {
        let mut families = self.inner.collect();
        families.retain(|f| f.name() != CPU);
        if let Some(now) = cpu_seconds() {
            let _guard = self.lock.lock();
            let delta = now - self.cpu.get();
            if delta > 0.0 {
                self.cpu.inc_by(delta);
            }
            families.extend(self.cpu.collect());
        }
        families
    }
}

/// User plus system CPU time of this process, in seconds with the kernel's
/// clock-tick resolution.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_seconds_of(&stat, rustix::param::clock_ticks_per_second())
}

/// Parses utime and stime (fields 14 and 15 of proc_pid_stat(5)) from a
/// `/proc/PID/stat` line. The command name (field 2) may contain spaces and
/// parentheses, so fields are counted after its last `)`.
fn cpu_seconds_of(stat: &str, ticks_per_second: u64) -> Option<f64> {
    if ticks_per_second == 0 {
        return None;
    }
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the command name.
    let mut fields = after_comm.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime) as f64 / ticks_per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::exposition::PagePublisher;

    #[test]
    fn parses_proc_stat() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 1234 0 0 0 \
                    157 43 0 0 20 0 9 0 123456 1000000 2000 18446744073709551615";
        assert_eq!(cpu_seconds_of(line, 100), Some(2.0));
        let line = line.replace(" 157 43 ", " 158 43 ");
        assert_eq!(cpu_seconds_of(&line, 100), Some(2.01));
        assert_eq!(cpu_seconds_of("garbage", 100), None);
        assert_eq!(cpu_seconds_of(&line, 0), None);
    }

    fn exposed_cpu(publisher: &PagePublisher) -> f64 {
        let page = publisher.assemble();
        let text = String::from_utf8_lossy(&page.plain).into_owned();
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        let values: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("process_cpu_seconds_total "))
            .filter_map(|v| v.trim().parse().ok())
            .collect();
        assert_eq!(values.len(), 1, "{text}");
        values[0]
    }

    /// The exposed value has the ticks' resolution: after some CPU work it
    /// is, nearly always, not a whole number (the crate's collector only
    /// ever gave whole numbers), and it matches the kernel's count.
    #[test]
    fn cpu_seconds_have_sub_second_resolution() {
        let publisher = PagePublisher::new();
        let mut samples = Vec::new();
        let mut x = 0u64;
        for _ in 0..20 {
            let start = std::time::Instant::now();
            while start.elapsed() < std::time::Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let before = cpu_seconds().unwrap();
            let exposed = exposed_cpu(&publisher);
            let after = cpu_seconds().unwrap();
            assert!(
                before <= exposed && exposed <= after,
                "{before} {exposed} {after}"
            );
            samples.push(exposed);
            if exposed.fract() != 0.0 {
                break;
            }
        }
        assert!(
            samples.iter().any(|v| v.fract() != 0.0),
            "only whole seconds: {samples:?}"
        );
        // A counter: it never goes back.
        assert!(samples.windows(2).all(|w| w[0] <= w[1]), "{samples:?}");
    }
}
