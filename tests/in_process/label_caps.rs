//! Owner ids and names come from the upstream and become label values: a
//! deepset user with a 15 KB `user_id` and a 100 KB `given_name` must give
//! capped, distinct labels in an exposition that promtool accepts (with
//! `label_value_length_limit` set, one long value fails the whole scrape).

use crate::common;

use common::*;
use upload_session_exporter::kinds::deepset::Pagination;
use upload_session_exporter::metrics::exposition::PagePublisher;
use upload_session_exporter::poller::target::MAX_LABEL_CHARS;
use upload_session_exporter::poller::{poll_once, Source, TargetState};
use upload_session_exporter::upstream::RequestLimiter;
use upload_session_sim::{DeepsetEndpoint, DeepsetSpec, FaultKind, FaultRule};

#[tokio::test]
async fn long_upstream_owner_labels_are_capped_and_distinct() {
    let prefix = "u".repeat(15 * 1024);
    let given = "G".repeat(100 * 1024);
    // The simulator's users have UUIDs: the long values come as records
    // added to the first listing of sessions.
    let record = |n: u32, user_id: String, given: &str| {
        serde_json::json!({
            "session_id": format!("00000000-0000-4000-8000-00000000000{n}"),
            "created_by": {"user_id": user_id, "given_name": given, "family_name": "L"},
            "created_at": "2025-01-01T00:00:00Z",
            "expires_at": null,
            "status": "OPEN",
            "write_mode": "KEEP",
        })
    };
    let sim = sim_with(vec![], vec![DeepsetSpec::new("default")]).await;
    sim.deepset("default").unwrap().inject(FaultRule::times(
        Some(DeepsetEndpoint::ListSessions),
        FaultKind::OddRecords {
            records: vec![
                record(1, format!("{prefix}-a"), &given),
                record(2, format!("{prefix}-b"), &"F".repeat(300)),
            ],
        },
        1,
    ));
    let target = deepset_target(&sim, "ds", "default", Pagination::Cursor);
    let mut source = Source::new(&target, &RequestLimiter::default()).unwrap();
    let mut state = TargetState::for_target(&target);
    poll_once(&target, &mut source, &mut state).await.unwrap();
    sim.shutdown().await;

    let publisher = PagePublisher::new();
    publisher.publish("ds", state.render());
    let text = String::from_utf8(publisher.assemble().plain.to_vec()).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| l.contains("owner_id=\"")) {
        for (label, value) in label_values(line) {
            assert!(
                value.chars().count() <= MAX_LABEL_CHARS,
                "{label} has {} characters",
                value.chars().count()
            );
            if label == "owner_id" {
                ids.insert(value.clone());
            }
            if label == "owner_name" {
                assert!(value.ends_with('…'), "{value}");
            }
        }
    }
    assert_eq!(ids.len(), 2, "two owners, two distinct capped ids: {ids:?}");
    assert!(ids.iter().all(|i| i.starts_with("uuuu") && i.contains('…')));
    let sessions = text
        .lines()
        .filter(|l| l.starts_with("upload_session_sessions{") && l.contains("state=\"open\""))
        .count();
    assert_eq!(sessions, 2, "{}", text.len());
    if let Some((ok, msg)) = promtool_check(&text) {
        assert!(ok, "promtool: {msg}");
    }
}

/// `(name, value)` of each label of a sample line (values without `\`).
fn label_values(line: &str) -> Vec<(String, String)> {
    let Some(inner) = line
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map(|(inner, _)| inner)
    else {
        return vec![];
    };
    inner
        .split("\",")
        .filter_map(|kv| kv.split_once("=\""))
        .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
        .collect()
}
