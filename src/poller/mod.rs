//! One poll loop per target: fetch the sessions on the target's interval
//! (at a phase drawn at start), update the history, render the target's
//! series and hand them to the [`PagePublisher`]. Failures back off exponentially; failed logins back
//! off much more, because Vault locks accounts after repeated bad passwords.

pub mod board;
pub mod budget;
pub mod history;
pub mod owners;
pub mod target;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{KindConfig, TargetConfig};
use crate::metrics::exposition::PagePublisher;
use crate::model::{now_millis, Session};
use crate::upstream::deepset::DeepsetClient;
use crate::upstream::vault::{self, VaultClient};
use crate::upstream::{ErrorReason, FetchError, RequestLimiter};

pub use target::TargetState;

/// Longest wait after ordinary failures.
const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);
/// First wait after a refused login, and the longest.
const LOGIN_BACKOFF_MIN: Duration = Duration::from_secs(5 * 60);
const LOGIN_BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);

/// The upstream client of a target.
pub enum Source {
    /// A Vault target, with its owner-name cache when names are resolved.
    Vault(Box<VaultClient>, Option<owners::OwnerNames>),
    /// A deepset workspace.
    Deepset(Box<DeepsetClient>),
}

impl Source {
    /// Creates the client for a target; its requests take their permits
    /// from `limiter`.
    pub fn new(target: &TargetConfig, limiter: &RequestLimiter) -> Result<Self, FetchError> {
        match &target.kind {
            KindConfig::Vault(v) => Ok(Source::Vault(
                Box::new(VaultClient::new(target, v, limiter)?),
                v.resolve_owner_names.then(owners::OwnerNames::default),
            )),
            KindConfig::Deepset(d) => Ok(Source::Deepset(Box::new(DeepsetClient::new(
                target, d, limiter,
            )?))),
        }
    }

    /// Fetches the current sessions.
    pub async fn fetch(&mut self, now: i64) -> Result<Vec<Session>, FetchError> {
        match self {
            Source::Vault(c, names) => {
                let list = c.list_sessions().await?;
                let total = list.sessions.len() + list.skipped;
                let sessions: Vec<Session> = list
                    .sessions
                    .into_iter()
                    .filter_map(|s| vault::to_model(s, now))
                    .collect();
                if sessions.len() < total {
                    tracing::warn!(
                        skipped = total - sessions.len(),
                        "some listed upload sessions had no id or an unreadable shape and were skipped"
                    );
                }
                let mut sessions = sessions;
                if let Some(names) = names {
                    names.resolve(c, &mut sessions).await;
                }
                Ok(sessions)
            }
            Source::Deepset(c) => c.fetch(now).await,
        }
    }

    /// Moves the call counts and limit headers into the target's state.
    pub fn account(&mut self, state: &mut TargetState) {
        match self {
            Source::Vault(c, _) => {
                state.count_calls(c.take_calls());
                state.set_burst(c.burst());
            }
            Source::Deepset(c) => state.count_calls(c.take_calls()),
        }
    }

    /// Ends the upstream session, if any.
    pub async fn close(&mut self) {
        match self {
            Source::Vault(c, _) => c.logout().await,
            // API keys need no logout.
            Source::Deepset(_) => {}
        }
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
        Some(mut s) if s.kind() == target.kind.label() => {
            s.reconfigure(&target);
            s
        }
        _ => TargetState::for_target(&target),
    };
    // The page lists the target (waiting for its first poll) at once.
    if let Some(board) = &shared.board {
        board.publish(state.view());
    }
    let mut source = match Source::new(&target, &shared.limiter) {
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
                let delay = backoff(&target, e, failures);
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
        let (delay, why) = match state.burst() {
            Some(burst) => budget::stretch(
                delay,
                burst,
                state.last_poll_calls(),
                budget::Budget {
                    share: target.burst_limit_share,
                    reserve: target.burst_limit_reserve,
                },
            ),
            None => (delay, None),
        };
        if why != throttled {
            match why {
                Some(w) => tracing::warn!(
                    target = %name,
                    next_poll_in = %humantime::format_duration(Duration::from_secs(delay.as_secs())),
                    "sparing the Vault's API budget: {}",
                    w.describe()
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
    // Be a good guest: end the Vault session instead of leaving it open.
    let _ = tokio::time::timeout(Duration::from_secs(5), source.close()).await;
    state
}

/// The wait before the next poll after `failures` consecutive failures.
pub fn backoff(target: &TargetConfig, error: &FetchError, failures: u32) -> Duration {
    let exp = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    let login_refused =
        matches!(error, FetchError::Auth { endpoint, .. } if *endpoint == vault::endpoint::AUTH);
    let delay = if login_refused {
        LOGIN_BACKOFF_MIN.saturating_mul(exp).min(LOGIN_BACKOFF_MAX)
    } else {
        target
            .poll_interval
            .saturating_mul(exp)
            .min(MAX_BACKOFF.max(target.poll_interval))
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
    use crate::config::{VaultConfig, DEFAULT_CLIENT_ID};
    use crate::secret::Secret;

    fn target(interval: u64) -> TargetConfig {
        TargetConfig {
            name: "t".into(),
            url: "https://v.example.com".parse().unwrap(),
            poll_interval: Duration::from_secs(interval),
            timeout: Duration::from_secs(5),
            stall_after: Duration::from_secs(1800),
            stale_after: Duration::from_secs(300),
            at_risk_horizon: Duration::from_secs(3600),
            burst_limit_share: 0.05,
            burst_limit_reserve: 0.1,
            ca_pem: None,
            tls_insecure_skip_verify: false,
            max_response_bytes: 1 << 20,
            kind: KindConfig::Vault(VaultConfig {
                api_version: "v25.2".into(),
                username: "u".into(),
                password: Secret::new("p"),
                client_id: DEFAULT_CLIENT_ID.into(),
                vault_id: None,
                resolve_owner_names: false,
            }),
        }
    }

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
        let t = target(60);
        let e = FetchError::HttpStatus {
            endpoint: "x",
            status: 502,
            snippet: String::new(),
        };
        let waits: Vec<u64> = (1..=6).map(|n| backoff(&t, &e, n).as_secs()).collect();
        assert_eq!(waits, vec![60, 120, 240, 480, 600, 600]);
        // A long interval is never shortened by the cap.
        assert_eq!(backoff(&target(3600), &e, 3).as_secs(), 3600);
    }

    #[test]
    fn refused_logins_wait_minutes_and_retry_after_is_honoured() {
        let t = target(5);
        let refused = FetchError::Auth {
            endpoint: vault::endpoint::AUTH,
            detail: "x".into(),
        };
        let waits: Vec<u64> = (1..=6)
            .map(|n| backoff(&t, &refused, n).as_secs())
            .collect();
        assert_eq!(waits, vec![300, 600, 1200, 2400, 3600, 3600]);
        let limited = FetchError::RateLimited {
            endpoint: "x",
            retry_after: Some(Duration::from_secs(90)),
        };
        assert_eq!(backoff(&t, &limited, 1).as_secs(), 90);
        // Forbidden on a data call is not a refused login: ordinary backoff.
        let forbidden = FetchError::Auth {
            endpoint: vault::endpoint::LIST_SESSIONS,
            detail: "x".into(),
        };
        assert_eq!(backoff(&t, &forbidden, 1).as_secs(), 5);
    }
}
