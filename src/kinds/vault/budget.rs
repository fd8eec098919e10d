//! Staying a polite guest on a Vault's API budget. The burst limit (calls
//! per fixed 5-minute window) is shared with every other integration of
//! the customer's Vault, so the exporter:
//! - spends at most `burst_limit_share` of it: the poll interval is
//!   stretched until calls-per-poll × polls-per-window fits that share;
//! - pauses for a whole window when what is left falls below
//!   `burst_limit_reserve` of the limit, or when Vault starts delaying
//!   responses (`X-VaultAPI-ResponseDelay`), which it does once the
//!   window's budget is spent.

use std::time::Duration;

use crate::upstream::BurstInfo;

/// Vault's burst window.
pub const WINDOW: Duration = Duration::from_secs(300);

/// The target's budget settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Share of the burst limit the exporter may use (0–1].
    pub share: f64,
    /// Pause when less than this share of the limit is left.
    pub reserve: f64,
}

/// Why the interval was stretched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttle {
    /// Calls per window would exceed the share.
    Share,
    /// Little of the window's budget is left.
    Reserve,
    /// Vault is delaying responses.
    Delayed,
}

impl Throttle {
    /// For log lines.
    pub fn describe(self) -> &'static str {
        match self {
            Throttle::Share => "the exporter's calls would exceed burst_limit_share of the Vault's burst limit",
            Throttle::Reserve => "the Vault's remaining burst budget is below burst_limit_reserve",
            Throttle::Delayed => "the Vault is delaying responses (X-VaultAPI-ResponseDelay): its burst limit is spent",
        }
    }
}

/// The wait before the next poll: `base`, or longer when the budget says so.
pub fn stretch(
    base: Duration,
    burst: BurstInfo,
    calls_last_poll: u64,
    budget: Budget,
) -> (Duration, Option<Throttle>) {
    if burst.response_delay_ms.is_some_and(|d| d > 0) {
        return (base.max(WINDOW), Some(Throttle::Delayed));
    }
    let Some(limit) = burst.limit.filter(|l| *l > 0) else {
        return (base, None);
    };
    if let Some(remaining) = burst.remaining {
        if (remaining as f64) < budget.reserve * limit as f64 {
            return (base.max(WINDOW), Some(Throttle::Reserve));
        }
    }
    let allowed = (budget.share * limit as f64).max(1.0);
    let needed = WINDOW.mul_f64(calls_last_poll as f64 / allowed);
    if needed > base {
        (needed, Some(Throttle::Share))
    } else {
        (base, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget {
        share: 0.05,
        reserve: 0.1,
    };

    fn burst(limit: u64, remaining: u64, delay: Option<u64>) -> BurstInfo {
        BurstInfo {
            limit: Some(limit),
            remaining: Some(remaining),
            response_delay_ms: delay,
        }
    }

    #[test]
    fn normal_polling_is_untouched() {
        // 1 call a minute = 5 per window, far below 5% of 2000 (100).
        assert_eq!(
            stretch(Duration::from_secs(60), burst(2000, 1500, None), 1, B),
            (Duration::from_secs(60), None)
        );
        // No headers seen (yet): nothing to go by.
        assert_eq!(
            stretch(Duration::from_secs(60), BurstInfo::default(), 50, B),
            (Duration::from_secs(60), None)
        );
    }

    #[test]
    fn share_stretches_the_interval() {
        // 50 calls per poll at 5 s = 3000 per window; 5% of 2000 = 100 per
        // window means one poll every 150 s.
        assert_eq!(
            stretch(Duration::from_secs(5), burst(2000, 1900, None), 50, B),
            (Duration::from_secs(150), Some(Throttle::Share))
        );
    }

    #[test]
    fn low_remaining_or_delays_wait_out_the_window() {
        assert_eq!(
            stretch(Duration::from_secs(60), burst(2000, 150, None), 1, B),
            (WINDOW, Some(Throttle::Reserve))
        );
        assert_eq!(
            stretch(Duration::from_secs(60), burst(2000, 1500, Some(500)), 1, B),
            (WINDOW, Some(Throttle::Delayed))
        );
        // A longer interval stays.
        assert_eq!(
            stretch(Duration::from_secs(900), burst(2000, 0, Some(500)), 1, B),
            (Duration::from_secs(900), Some(Throttle::Delayed))
        );
    }

    #[test]
    fn boundaries_of_each_rule() {
        let base = Duration::from_secs(150);
        // Exactly the share (50 calls × 2 polls per window = 100 = 5% of
        // 2000): not stretched.
        assert_eq!(stretch(base, burst(2000, 1900, None), 50, B), (base, None));
        // More calls: stretched to what the share allows (75 calls, 100
        // per window: 225 s).
        assert_eq!(
            stretch(base, burst(2000, 1900, None), 75, B),
            (Duration::from_secs(225), Some(Throttle::Share))
        );
        // Remaining exactly at the reserve (25% of 2000): not paused.
        let r = Budget {
            share: 0.5,
            reserve: 0.25,
        };
        assert_eq!(stretch(base, burst(2000, 500, None), 1, r), (base, None));
        assert_eq!(
            stretch(base, burst(2000, 499, None), 1, r),
            (WINDOW, Some(Throttle::Reserve))
        );
        // A zero delay header is no delay; a zero limit is no information.
        assert_eq!(
            stretch(base, burst(2000, 1900, Some(0)), 1, B),
            (base, None)
        );
        assert_eq!(stretch(base, burst(0, 0, None), 1000, B), (base, None));
        // A tiny share still allows one call per window.
        let tiny = Budget {
            share: 0.0001,
            reserve: 0.0,
        };
        assert_eq!(
            stretch(Duration::from_secs(1), burst(2000, 2000, None), 2, tiny),
            (Duration::from_secs(600), Some(Throttle::Share))
        );
    }

    #[test]
    fn each_throttle_names_its_setting() {
        assert!(Throttle::Share.describe().contains("burst_limit_share"));
        assert!(Throttle::Reserve.describe().contains("burst_limit_reserve"));
        assert!(Throttle::Delayed
            .describe()
            .contains("X-VaultAPI-ResponseDelay"));
    }
}
