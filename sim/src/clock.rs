//! The simulator's wall clock: real UTC time plus an adjustable offset, so
//! tests can jump over expiry, purge and idle timeouts without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// Largest offset `advance` may build up (about 100 years); keeps
/// `now_utc() + offset` far from `OffsetDateTime`'s range limits.
const MAX_OFFSET_MS: i64 = 100 * 365 * 24 * 3600 * 1000;

/// Simulated clock shared by every vault of a simulator.
#[derive(Debug, Default)]
pub(crate) struct SimClock {
    offset_ms: AtomicI64,
}

impl SimClock {
    /// A clock that starts at real time.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Current simulated time, truncated to milliseconds (the precision of
    /// every timestamp Vault returns).
    pub(crate) fn now(&self) -> OffsetDateTime {
        let real = OffsetDateTime::now_utc();
        let offset = time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst));
        truncate_ms(real.checked_add(offset).unwrap_or(real))
    }

    /// Moves simulated time forward.
    /// [`now`](Self::now) to the microsecond (deepset timestamps carry
    /// microseconds). One reading of the real clock: two readings (the
    /// millisecond from one, the microseconds from the other) could go
    /// backwards within a millisecond.
    pub(crate) fn now_micros(&self) -> OffsetDateTime {
        let real = OffsetDateTime::now_utc();
        let offset = time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst));
        let t = real.checked_add(offset).unwrap_or(real);
        t.replace_nanosecond(t.microsecond() * 1_000).unwrap_or(t)
    }

    pub(crate) fn advance(&self, by: Duration) {
        let add = i64::try_from(by.as_millis()).unwrap_or(MAX_OFFSET_MS);
        // fetch_update with a closure that always returns Some cannot fail.
        let _ = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |cur| {
                Some(cur.saturating_add(add).min(MAX_OFFSET_MS))
            });
    }
}

/// Drops sub-millisecond precision.
pub(crate) fn truncate_ms(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(u32::from(t.millisecond()) * 1_000_000)
        .unwrap_or(t)
}

/// Formats a timestamp the way Vault does: `2020-10-07T19:27:07.000Z`
/// (UTC, always millisecond precision).
pub(crate) fn format_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
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

/// Converts a std duration into a `time` duration, saturating.
pub(crate) fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

/// `t + d`, saturating instead of panicking at the end of time.
pub(crate) fn add(t: OffsetDateTime, d: Duration) -> OffsetDateTime {
    t.checked_add(to_time(d)).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn microsecond_readings_never_go_back() {
        let c = SimClock::new();
        let mut last = c.now_micros();
        for _ in 0..100_000 {
            let t = c.now_micros();
            assert!(t >= last, "{t} < {last}");
            assert_eq!(t.nanosecond() % 1_000, 0);
            last = t;
        }
    }

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(
            format_ts(datetime!(2020-10-07 19:27:07 UTC)),
            "2020-10-07T19:27:07.000Z"
        );
        assert_eq!(
            format_ts(datetime!(2020-10-07 21:27:07.123456 +02:00)),
            "2020-10-07T19:27:07.123Z"
        );
    }

    #[test]
    fn advance_moves_now() {
        let c = SimClock::new();
        let before = c.now();
        c.advance(Duration::from_secs(3600));
        let diff = c.now() - before;
        assert!(diff >= time::Duration::seconds(3600), "{diff}");
        assert!(diff < time::Duration::seconds(3660), "{diff}");
        c.advance(Duration::MAX);
        let _ = c.now(); // must not panic
    }
}
