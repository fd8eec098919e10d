//! One poll loop per target: fetch the sessions on the target's interval
//! (at a phase drawn at start), update the history, render the target's
//! series and hand them to the [`PagePublisher`]. Failures back off exponentially; failed logins back
//! off much more, because Vault locks accounts after repeated bad passwords.

pub mod board;
pub mod discovery;
pub mod history;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::kinds;
use crate::metrics::exposition::PagePublisher;
use crate::model::{now_millis, Session};
use crate::settings::TargetConfig;
use crate::upstream::{ErrorReason, FetchError, RequestLimiter};

pub use discovery::Found;
pub use target::TargetState;

/// Longest wait after ordinary failures.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// First wait after a refused login, and the longest.
const LOGIN_BACKOFF_MIN: Duration = Duration::from_secs(5 * 60);
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);

/// The upstream client of a target, whatever its kind.
pub struct Source(Box<dyn kinds::Source>);

impl Source {
    /// Creates the client for a target (its kind builds it); its requests
    /// take their permits from `limiter`. A target that finds its targets at
    /// run time ([`kinds::discovers`]) drops what it finds: see
    /// [`Source::finding`].
    pub fn new(target: &TargetConfig, limiter: &RequestLimiter) -> Result<Self, FetchError> {
        Self::finding(target, limiter, None)
    }

    /// [`Source::new`]; a target that finds its targets at run time sends
    /// what it finds to `found`.
    pub fn finding(
        target: &TargetConfig,
        limiter: &RequestLimiter,
        found: Option<&UnboundedSender<Found>>,
    ) -> Result<Self, FetchError> {
        if kinds::discovers(target) {
            return Ok(Source(Box::new(discovery::Discovering {
                client: kinds::discoverer_for(target, limiter)?,
                target: target.clone(),
                found: found.cloned(),
            })));
        }
        kinds::source_for(target, limiter).map(Source)
    }

    /// Fetches the current sessions.
    pub async fn fetch(&mut self, now: i64) -> Result<Vec<Session>, FetchError> {
        self.0.fetch(now).await
    }

    /// Moves the call counts and budget headers into the target's state.
    pub fn account(&mut self, state: &mut TargetState) {
        state.count_calls(self.0.take_calls());
        if let Some(b) = self.0.budget() {
            state.set_burst(b);
        }
        state.set_gauges(self.0.gauges());
    }

    /// The wait before the next poll: `wait`, or longer when the kind must
    /// spare its upstream's budget (with why).
    pub fn pace(&self, wait: Duration, last_poll_calls: u64) -> (Duration, Option<&'static str>) {
        self.0.pace(wait, last_poll_calls)
    }

    /// True if `error` is a refused login.
    pub fn refused_login(&self, error: &FetchError) -> bool {
        self.0.refused_login(error)
    }

    /// Ends the upstream session, if any.
    pub async fn close(&mut self) {
        self.0.close().await
    }
}

pub use crate::readiness::Readiness;

/// What a poll task shares with the rest of the exporter.
#[derive(Clone)]
pub struct Shared {
    /// Where rendered fragments go.
    pub publisher: Arc<PagePublisher>,
    /// Bounds the upstream requests in flight, across all targets (not the
    /// polls: a poll with many calls must not hold up the others).
    pub limiter: RequestLimiter,
    /// First-poll bookkeeping.
    pub readiness: Arc<Readiness>,
    /// Where each poll's sessions go for the `/sessions` page; `None` when
    /// the page is off (the sessions are then not kept).
    pub board: Option<Arc<board::Board>>,
    /// Where targets that find their targets at run time send them.
    pub found: Option<UnboundedSender<Found>>,
}

/// Polls one target once and returns its state: for `--once` and tests.
pub async fn poll_once(
    target: &TargetConfig,
    source: &mut Source,
    state: &mut TargetState,
) -> Result<(), FetchError> {
    poll_once_keeping(target, source, state, false).await
}

/// [`poll_once`], keeping the sessions in `state` for the `/sessions` page
/// if `keep`.
pub async fn poll_once_keeping(
    target: &TargetConfig,
    source: &mut Source,
    state: &mut TargetState,
    keep: bool,
) -> Result<(), FetchError> {
    let started = Instant::now();
    let now = now_millis();
    // A whole poll gets at most one interval (or timeout), so that a target
    // whose upstream trickles (every page just within the timeout) still
    // ends its poll. Each request is bounded by the timeout on its own. The
    // deadline includes waiting for request permits: when the whole fleet
    // needs more requests than fit into an interval, a long poll may run
    // past its deadline; what it fetched meanwhile stays cached (deepset) and
    // the next poll goes on from there.
    let deadline = target.poll_interval.max(target.timeout);
    let result = match tokio::time::timeout(deadline, source.fetch(now)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout {
            endpoint: "poll",
            timeout: deadline,
        }),
    };
    let secs = started.elapsed().as_secs_f64();
    source.account(state);
    match result {
        Ok(sessions) => {
            state.record_success(&sessions, now, secs);
            if keep {
                state.keep_sessions(sessions);
            }
            Ok(())
        }
        Err(e) => {
            state.record_failure(&e, now, secs);
            Err(e)
        }
    }
}

/// Runs the poll loop of one target until `shutdown`, logs out, and
/// returns the target's state. A state handed in (after a reload changed
/// the target) keeps its counters and history.
pub async fn run_target(
    target: TargetConfig,
    previous: Option<TargetState>,
    shared: Shared,
    shutdown: CancellationToken,
) -> TargetState {
    let name = target.name.clone();
    let mut state = match previous {
        Some(mut s) if s.kind() == target.kind_name() => {
            s.reconfigure(&target);
            s
        }
        _ => TargetState::for_target(&target),
    };
    // The page lists the target (waiting for its first poll) at once.
    if let Some(board) = &shared.board {
        board.publish(state.view());
    }
    let mut source = match Source::finding(&target, &shared.limiter, shared.found.as_ref()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(target = %name, error = %e, "cannot create the upstream client");
            state.record_failure(&e, now_millis(), 0.0);
            shared.publisher.publish(&name, state.render());
            if let Some(board) = &shared.board {
                board.publish(state.view());
            }
            shared.readiness.done(&name);
            None
        }
    };
    let Some(source) = source.as_mut() else {
        shutdown.cancelled().await;
        return state;
    };
    let mut next = first_poll(Instant::now(), target.poll_interval);
    let mut failures: u32 = 0;
    let mut throttled = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shutdown.cancelled() => break,
        }
        // No permit for the whole poll: each request takes one (see
        // `RequestLimiter`), so a poll with many calls does not hold up the
        // other targets.
        let scheduled = next;
        let result = tokio::select! {
            r = poll_once_keeping(&target, source, &mut state, shared.board.is_some()) => r,
            _ = shutdown.cancelled() => break,
        };
        let delay = match &result {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(target = %name, "target recovered");
                }
                failures = 0;
                target.poll_interval
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = backoff(target.poll_interval, e, failures, source.refused_login(e));
                tracing::warn!(
                    target = %name,
                    reason = %e.reason(),
                    error = %e,
                    retry_in = %humantime::format_duration(Duration::from_secs(delay.as_secs())),
                    "poll failed"
                );
                delay
            }
        };
        let (delay, why) = source.pace(delay, state.last_poll_calls());
        if why != throttled {
            match why {
                Some(w) => tracing::warn!(
                    target = %name,
                    next_poll_in = %humantime::format_duration(Duration::from_secs(delay.as_secs())),
                    "sparing the upstream's API budget: {w}"
                ),
                None => {
                    tracing::info!(target = %name, "API budget fine again; polling at the normal interval")
                }
            }
            throttled = why;
        }
        state.set_scheduled_delay(delay);
        shared.publisher.publish(&name, state.render());
        if let Some(board) = &shared.board {
            board.publish(state.view());
        }
        shared.readiness.done(&name);
        next = next_poll(scheduled, delay, Instant::now());
        // A Retry-After counts from the answer.
        if let Some(after) = result.as_ref().err().and_then(FetchError::retry_after) {
            next = next.max(Instant::now() + after);
        }
    }
    // Be a good guest: end the upstream session instead of leaving it open.
    let _ = tokio::time::timeout(Duration::from_secs(5), source.close()).await;
    state
}

/// The wait before the next poll after `failures` consecutive failures of
/// a target polled every `interval`; `refused_login` when the last one was
/// a refused login (see [`kinds::Source::refused_login`]).
pub fn backoff(
    interval: Duration,
    error: &FetchError,
    failures: u32,
    refused_login: bool,
) -> Duration {
    let exp = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    let delay = if refused_login {
        LOGIN_BACKOFF_MIN.saturating_mul(exp).min(LOGIN_BACKOFF_MAX)
    } else {
        interval.saturating_mul(exp).min(MAX_BACKOFF.max(interval))
    };
    match (error.reason(), error.retry_after()) {
        (ErrorReason::RateLimited, Some(after)) => delay.max(after),
        _ => delay,
    }
}

/// The first poll of a target: a random phase in the first tenth of the
/// interval (at most 2 s), so that targets started together do not all send
/// their first request at the same instant.
fn first_poll(now: Instant, interval: Duration) -> Instant {
    let spread = (interval / 10).min(Duration::from_secs(2));
    now + jitter(spread / 2, spread / 2)
}

/// The next poll: `delay` after the previous one was *due* (not after it
/// started or ended), so a target keeps the phase it drew at start and the
/// interval is the period, not the gap. Targets with one interval therefore
/// stay within the first poll's spread of each other, cycle after cycle: the
/// page is assembled about once per cycle instead of once per publish gap,
/// and the runtime wakes for a burst of polls rather than for each one. (A
/// random jitter per cycle would make the phases drift apart until polls
/// finished all through the interval.) A poll that overran its slot starts
/// at once.
fn next_poll(due: Instant, delay: Duration, now: Instant) -> Instant {
    (due + delay).max(now)
}

fn jitter(base: Duration, spread: Duration) -> Duration {
    if spread.is_zero() {
        return base;
    }
    let s = spread.as_millis() as i64;
    let offset = rand::rng().random_range(-s..=s);
    if offset >= 0 {
        base + Duration::from_millis(offset as u64)
    } else {
        base.saturating_sub(Duration::from_millis(offset.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_keep_the_phase_drawn_at_start() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(60);
        let first = first_poll(t0, interval);
        assert!(
            first >= t0 && first <= t0 + Duration::from_secs(2),
            "{:?}",
            first - t0
        );
        // Five polls that started late and ran long: the sixth is still due
        // exactly five intervals after the first, not later.
        let mut due = first;
        for k in 1..=5u32 {
            let started = due + Duration::from_millis(300);
            let ended = started + Duration::from_secs(3);
            due = next_poll(due, interval, ended);
            assert_eq!(due - first, interval * k);
        }
        // A poll that overran its slot: the next one starts at once.
        let late = due + Duration::from_secs(90);
        assert_eq!(next_poll(due, interval, late), late);
        // A short interval spreads first polls over a tenth of it.
        for _ in 0..100 {
            let f = first_poll(t0, Duration::from_secs(5));
            assert!(f - t0 <= Duration::from_millis(500));
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let t = Duration::from_secs(60);
        let e = FetchError::HttpStatus {
            endpoint: "x",
            status: 502,
            snippet: String::new(),
        };
        let waits: Vec<u64> = (1..=6)
            .map(|n| backoff(t, &e, n, false).as_secs())
            .collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 600, 600]);
        // A long interval is never shortened by the cap.
        assert_eq!(
            backoff(Duration::from_secs(3600), &e, 3, false).as_secs(),
            3600
        );
    }

    #[test]
    fn refused_logins_wait_minutes_and_retry_after_is_honoured() {
        let t = Duration::from_secs(5);
        let refused = FetchError::Auth {
            endpoint: "auth",
            detail: "x".into(),
        };
        let waits: Vec<u64> = (1..=6)
            .map(|n| backoff(t, &refused, n, true).as_secs())
            .collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 3600, 3600]);
        let limited = FetchError::RateLimited {
            endpoint: "x",
            retry_after: Some(Duration::from_secs(90)),
        };
        assert_eq!(backoff(t, &limited, 1, false).as_secs(), 90);
        // An auth error that is not a refused login: ordinary backoff.
        assert_eq!(backoff(t, &refused, 1, false).as_secs(), 5);
    }
}
