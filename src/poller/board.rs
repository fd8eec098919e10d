//! What the poll tasks publish for the `/sessions` page (rendered by the
//! `sessions` module, which reads this one, never the reverse): per target, the sessions and judgements of its last
//! successful poll, its health and last error. Rendering lives in
//! `sessions`; this side only keeps and hands over.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::history::Judgement;
use crate::model::{Session, UnixMillis};
use crate::upstream::ErrorReason;

/// The sessions of one successful poll, with their judgements (same order).
#[derive(Debug, Default)]
pub struct Polled {
    /// When the poll was made.
    pub at: UnixMillis,
    /// The sessions listed.
    pub sessions: Vec<Session>,
    /// Their judgements.
    pub judgements: Vec<Judgement>,
}

/// The last failed poll of a target.
#[derive(Debug, Clone, PartialEq)]
pub struct LastError {
    /// The `reason` label.
    pub reason: ErrorReason,
    /// The error, secrets scrubbed, cut to a line.
    pub message: String,
    /// When it happened.
    pub at: UnixMillis,
}

/// What the pages show of one target.
#[derive(Debug, Clone)]
pub struct TargetView {
    /// Target name.
    pub name: String,
    /// The `kind` label.
    pub kind: &'static str,
    /// What the kind counts progress in (which columns to show).
    pub measure: crate::model::Measure,
    /// Last poll succeeded.
    pub up: bool,
    /// A poll (good or bad) has finished.
    pub polled: bool,
    /// Time of the last successful poll.
    pub last_success: Option<UnixMillis>,
    /// The last failure, if any poll failed since the last success.
    pub last_error: Option<LastError>,
    /// The sessions of the last successful poll; dropped when the target's
    /// figures go stale, like its per-owner series.
    pub polled_sessions: Option<Arc<Polled>>,
}

impl TargetView {
    /// The sessions with their judgements.
    pub fn pairs(&self) -> impl Iterator<Item = (&Session, &Judgement)> {
        self.polled_sessions
            .iter()
            .flat_map(|p| p.sessions.iter().zip(p.judgements.iter()))
    }

    /// Sessions in the snapshot.
    pub fn session_count(&self) -> usize {
        self.polled_sessions
            .as_ref()
            .map_or(0, |p| p.sessions.len())
    }
}

/// The latest [`TargetView`] of every target, for the web pages. Memory:
/// one poll's sessions per target (the previous snapshot is dropped when
/// the next one is published).
#[derive(Debug, Default)]
pub struct Board {
    targets: Mutex<BTreeMap<String, Arc<TargetView>>>,
}

impl Board {
    /// An empty board.
    pub fn new() -> Arc<Board> {
        Arc::new(Board::default())
    }

    /// Replaces a target's view.
    pub fn publish(&self, view: TargetView) {
        if let Ok(mut t) = self.targets.lock() {
            t.insert(view.name.clone(), Arc::new(view));
        }
    }

    /// Forgets a target (removed by a reload).
    pub fn remove(&self, name: &str) {
        if let Ok(mut t) = self.targets.lock() {
            t.remove(name);
        }
    }

    /// Every target's view, by name (cheap: clones `Arc`s).
    pub fn snapshot(&self) -> Vec<Arc<TargetView>> {
        self.targets
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, sessions: usize) -> TargetView {
        let session = |i: usize| Session {
            id: format!("{name}-{i}"),
            owner_id: "o".into(),
            owner_name: None,
            path: None,
            state: crate::model::SessionState::Active,
            size: None,
            uploaded: i as u64,
            parts: 0,
            created: None,
            expires: None,
            last_upload: None,
            files: None,
        };
        TargetView {
            name: name.to_string(),
            kind: "vault",
            measure: crate::model::Measure::SizedBytes,
            up: true,
            polled: true,
            last_success: Some(1),
            last_error: None,
            polled_sessions: Some(Arc::new(Polled {
                at: 1,
                sessions: (0..sessions).map(session).collect(),
                judgements: vec![Judgement::default(); sessions],
            })),
        }
    }

    /// Views are kept by name, replaced by the next publication, and gone once
    /// their target is removed by a reload.
    #[test]
    fn publish_replace_remove() {
        let board = Board::new();
        board.publish(view("b", 1));
        board.publish(view("a", 2));
        board.publish(view("b", 3));
        let names = |b: &Board| -> Vec<(String, usize)> {
            b.snapshot()
                .iter()
                .map(|v| (v.name.clone(), v.session_count()))
                .collect()
        };
        assert_eq!(names(&board), [("a".into(), 2), ("b".into(), 3)]);
        board.remove("a");
        assert_eq!(names(&board), [("b".into(), 3)]);
        board.remove("unknown");
        assert_eq!(names(&board), [("b".into(), 3)]);
        let b = &board.snapshot()[0];
        let ids: Vec<&str> = b.pairs().map(|(s, _)| s.id.as_str()).collect();
        assert_eq!(ids, ["b-0", "b-1", "b-2"]);
    }
}
