//! Which targets have finished their first poll: written by the poll loops,
//! read by the server's `/-/ready`. Its own module so that neither of those
//! layers reaches into the other.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Which targets have finished their first poll (for `/-/ready`).
#[derive(Debug, Default)]
pub struct Readiness {
    waiting: Mutex<HashSet<String>>,
}

impl Readiness {
    /// Starts waiting for these targets.
    pub fn new<'a>(targets: impl IntoIterator<Item = &'a str>) -> Arc<Self> {
        Arc::new(Readiness {
            waiting: Mutex::new(targets.into_iter().map(str::to_string).collect()),
        })
    }

    /// Starts waiting for one more target (added by a reload).
    pub fn wait_for(&self, target: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(target.to_string());
        }
    }

    /// A target finished its first poll.
    pub fn done(&self, target: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(target);
        }
    }

    /// Targets still waiting for their first poll.
    pub fn waiting(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .waiting
            .lock()
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
