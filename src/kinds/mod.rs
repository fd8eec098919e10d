//! Upstream kinds: everything specific to one upstream API lives in its
//! folder here (its configuration keys and their checks, its client and
//! wire types, its extras such as Vault's API-budget guard), behind the
//! traits of this module. The generic layers (configuration loading, the
//! poller, the history, the metrics and the server) know kinds only through
//! these traits and the registry [`KINDS`].
//!
//! Adding a kind: a folder `src/kinds/<kind>/` implementing [`Kind`],
//! [`KindConfig`] (for its settings) and [`Source`], its `pub mod` line below and its entry in
//! [`KINDS`] (see docs/architecture.md).

pub mod deepset;
pub mod s3;
pub mod vault;

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::metrics::text::Value;
use crate::metrics::Family;
use crate::model::{Measure, Session, UnixMillis};
use crate::settings::{KindConfig, KindInput, TargetConfig};
use crate::upstream::{BurstInfo, FetchError, RequestLimiter};

/// The registry: every kind the exporter knows, in the order the
/// documentation and error messages list them.
pub static KINDS: &[&dyn Kind] = &[&vault::Vault, &deepset::Deepset, &s3::S3];

/// The kind called `name` (the `kind` key and label).
pub fn find(name: &str) -> Option<&'static dyn Kind> {
    KINDS.iter().copied().find(|k| k.name() == name)
}

/// True if `target` stands for targets its kind finds at run time (an S3
/// target without `buckets`); it is then not polled for sessions but
/// through [`discoverer_for`].
pub fn discovers(target: &TargetConfig) -> bool {
    find(target.kind_name()).is_some_and(|k| k.discovers(target))
}

/// The client that finds the targets `target` stands for.
pub fn discoverer_for(
    target: &TargetConfig,
    limiter: &RequestLimiter,
) -> Result<Box<dyn Discover>, FetchError> {
    match find(target.kind_name()) {
        Some(kind) => kind.discoverer(target, limiter),
        None => Err(unregistered(target)),
    }
}

fn unregistered(target: &TargetConfig) -> FetchError {
    FetchError::Connect {
        endpoint: "poll",
        detail: format!("no kind {:?} is registered", target.kind_name()),
    }
}

/// The client that polls `target`, built by its kind; its requests take
/// their permits from `limiter`.
pub fn source_for(
    target: &TargetConfig,
    limiter: &RequestLimiter,
) -> Result<Box<dyn Source>, FetchError> {
    match find(target.kind_name()) {
        Some(kind) => kind.source(target, limiter),
        // Only a target built by hand with an unregistered kind gets here.
        None => Err(unregistered(target)),
    }
}

/// One upstream kind: what it is called and how a target of it is
/// configured. Implemented by a unit struct in the kind's folder.
pub trait Kind: Sync {
    /// The `kind` key's value and the `kind` label, e.g. `vault`.
    fn name(&self) -> &'static str;
    /// How the kind is named in messages, e.g. `Vault`.
    fn title(&self) -> &'static str;
    /// What a session's progress is counted in; decides which per-owner
    /// families are written and which columns the session views show.
    fn measure(&self) -> Measure;
    /// An example of the target `url`, for the "url missing" message.
    fn example_url(&self) -> &'static str;
    /// True if a target may leave `url` out (the kind then sets it with
    /// [`KindInput::default_url`], e.g. from a region).
    fn url_optional(&self) -> bool {
        false
    }
    /// The keys a target of this kind may hold besides the common ones.
    fn keys(&self) -> &'static [&'static str];
    /// Those of [`keys`](Kind::keys) that may also stand in `[defaults]`.
    fn default_keys(&self) -> &'static [&'static str] {
        &[]
    }
    /// Checks and converts this kind's keys of one target, reporting every
    /// problem through `input`; `None` when there was one.
    fn parse(&self, input: &mut KindInput<'_>) -> Option<Box<dyn KindConfig>>;
    /// The targets published for one configured target: itself, or one per
    /// part of it (S3: one per bucket, named `<name>:<bucket>`).
    fn expand(&self, target: TargetConfig) -> Vec<TargetConfig> {
        vec![target]
    }
    /// The client that polls `target` (whose settings this kind parsed);
    /// its requests take their permits from `limiter`.
    fn source(
        &self,
        target: &TargetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Box<dyn Source>, FetchError>;
    /// True if `target` (as [`expand`](Kind::expand) left it) stands for
    /// targets found at run time, e.g. an S3 target without `buckets`.
    fn discovers(&self, _target: &TargetConfig) -> bool {
        false
    }
    /// The client that finds them, for a target that [`discovers`](Kind::discovers).
    fn discoverer(
        &self,
        target: &TargetConfig,
        _limiter: &RequestLimiter,
    ) -> Result<Box<dyn Discover>, FetchError> {
        Err(FetchError::Connect {
            endpoint: "poll",
            detail: format!(
                "target {:?}: a {} target finds no targets at run time",
                target.name,
                self.title()
            ),
        })
    }
}

/// What the poll loop of a target that [`Kind::discovers`] asks of its
/// client: the targets to poll, found anew each interval.
pub trait Discover: Send {
    /// The targets `target` stands for now, each as complete as
    /// [`Kind::expand`] would have made it (S3: one per bucket, named
    /// `<name>:<bucket>`).
    fn discover(&mut self) -> BoxFuture<'_, Result<Vec<TargetConfig>, FetchError>>;
    /// Upstream calls per endpoint since the last call of this method.
    fn take_calls(&mut self) -> Vec<(&'static str, u64)>;
}

/// What the poll loop asks of a target's client. Owned by the target's
/// poll task.
pub trait Source: Send {
    /// Fetches the current sessions (all pages), converted to the model.
    fn fetch(&mut self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<Session>, FetchError>>;
    /// Upstream calls per endpoint since the last call of this method.
    fn take_calls(&mut self) -> Vec<(&'static str, u64)>;
    /// What the upstream last said about the caller's request budget, for
    /// kinds whose upstream says it.
    fn budget(&self) -> Option<BurstInfo> {
        None
    }
    /// The wait before the next poll given the wait the schedule asks for
    /// and the calls the last poll made: longer when the upstream's budget
    /// must be spared, with why (for the log).
    fn pace(&self, wait: Duration, _last_poll_calls: u64) -> (Duration, Option<&'static str>) {
        (wait, None)
    }
    /// True if `error` is a refused login, which waits much longer before
    /// the next try (upstreams lock accounts after repeated bad passwords).
    fn refused_login(&self, _error: &FetchError) -> bool {
        false
    }
    /// Per-target gauges of the kind's own (labelled `target` only), as of
    /// the last poll, e.g. S3's `upload_session_abort_after_seconds`.
    fn gauges(&self) -> Vec<(Family, Value)> {
        Vec::new()
    }
    /// Ends the upstream session, if the kind has one.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name_and_names_are_unique() {
        let mut names: Vec<&str> = KINDS.iter().map(|k| k.name()).collect();
        for n in &names {
            assert_eq!(find(n).map(|k| k.name()), Some(*n));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        assert!(find("nope").is_none());
    }
}
