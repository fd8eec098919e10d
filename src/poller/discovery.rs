//! The poll loop of a target that finds its targets at run time (an S3
//! target without `buckets`): each poll asks the kind's [`Discover`] client
//! for them and hands them on as a [`Found`]; the target itself publishes
//! no sessions, only its health and calls. Whoever runs the poll loops (the
//! supervisor in `app`) receives the [`Found`]s and polls the targets in
//! them like configured ones.

use futures_util::future::BoxFuture;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use crate::kinds::{Discover, Source};
use crate::model::{Session, UnixMillis};
use crate::settings::TargetConfig;
use crate::upstream::FetchError;

/// The targets a target stands for, as of its last successful poll.
#[derive(Debug)]
pub struct Found {
    /// The target that found them, as configured (a reload that changed it
    /// makes this stale: the receiver compares).
    pub by: TargetConfig,
    /// The targets to poll.
    pub targets: Vec<TargetConfig>,
    /// Answered once the receiver has taken them in. The finder's poll ends
    /// only then, so `/-/ready` turns ready only once the targets found are
    /// waited for too.
    pub taken: oneshot::Sender<()>,
}

/// A [`Discover`] client seen as a [`Source`] with no sessions, so that the
/// poll loop's schedule, deadline, backoff, health series and logs serve it
/// as well.
pub(super) struct Discovering {
    pub(super) client: Box<dyn Discover>,
    pub(super) target: TargetConfig,
    /// `None`: what is found is dropped (nobody polls it).
    pub(super) found: Option<UnboundedSender<Found>>,
}

impl Source for Discovering {
    fn fetch(&mut self, _now: UnixMillis) -> BoxFuture<'_, Result<Vec<Session>, FetchError>> {
        Box::pin(async move {
            let targets = self.client.discover().await?;
            if let Some(tx) = &self.found {
                let (taken, answer) = oneshot::channel();
                // Unbounded: a send never waits. The answer may: a reload
                // that holds the receiver stops this poll (cancelling this
                // wait) rather than waiting for it.
                let sent = tx.send(Found {
                    by: self.target.clone(),
                    targets,
                    taken,
                });
                if sent.is_ok() {
                    let _ = answer.await;
                }
            }
            Ok(Vec::new())
        })
    }

    fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        self.client.take_calls()
    }
}
