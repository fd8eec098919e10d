//! Vault owner names for `upload_session_owner_info`: looked up once per
//! owner with Retrieve User, cached for hours, and budgeted per poll so that
//! a Vault with many owners spreads its lookups over several polls instead
//! of spending a burst of its API budget at once. A failed lookup is logged
//! and retried later; it never fails the poll.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::VaultClient;
use crate::model::Session;

/// How long a name is trusted.
pub const NAME_TTL: Duration = Duration::from_secs(6 * 3600);
/// How long to wait before asking again after a failed lookup.
pub const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15 * 60);
/// Lookups per poll at most.
pub const LOOKUPS_PER_POLL: usize = 5;

#[derive(Debug, Clone)]
struct Entry {
    name: Option<String>,
    refresh_at: Instant,
}

/// The cache of one target.
#[derive(Debug, Default)]
pub struct OwnerNames {
    entries: HashMap<u64, Entry>,
}

impl OwnerNames {
    /// Owners whose name is known or being retried.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Fills `owner_name` of the sessions, looking up at most
    /// [`LOOKUPS_PER_POLL`] owners that are unknown or due for a refresh.
    pub async fn resolve(&mut self, client: &mut VaultClient, sessions: &mut [Session]) {
        let now = Instant::now();
        let mut owners: Vec<u64> = sessions
            .iter()
            .filter_map(|s| s.owner_id.parse::<u64>().ok())
            .collect();
        owners.sort_unstable();
        owners.dedup();
        // Forget owners no longer listed, so the cache follows the list.
        self.entries
            .retain(|id, _| owners.binary_search(id).is_ok());
        let due: Vec<u64> = owners
            .iter()
            .copied()
            .filter(|id| self.entries.get(id).is_none_or(|e| e.refresh_at <= now))
            .take(LOOKUPS_PER_POLL)
            .collect();
        for id in due {
            let entry = match client.user_name(id).await {
                Ok(name) => Entry {
                    name,
                    refresh_at: now + NAME_TTL,
                },
                Err(e) => {
                    tracing::warn!(owner_id = id, error = %e, "owner name lookup failed; retrying later");
                    Entry {
                        // Keep a name we had; it is better than none.
                        name: self.entries.get(&id).and_then(|e| e.name.clone()),
                        refresh_at: now + RETRY_AFTER_FAILURE,
                    }
                }
            };
            self.entries.insert(id, entry);
        }
        for s in sessions {
            if let Some(name) = s
                .owner_id
                .parse::<u64>()
                .ok()
                .and_then(|id| self.entries.get(&id))
                .and_then(|e| e.name.clone())
            {
                s.owner_name = Some(name);
            }
        }
    }
}
