//! deepset responses in the shape of seed 004 (Get Upload Sessions) and the
//! documented status/files/422 bodies decode as expected.

use upload_session_exporter::kinds::deepset::{to_model, wire};
use upload_session_exporter::model::{parse_timestamp, SessionState};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/deepset/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn sessions_page_decodes_with_unknown_values() {
    let page: wire::SessionPage = serde_json::from_str(&fixture("sessions_page.json")).unwrap();
    assert!(page.has_more);
    assert_eq!(page.total, Some(251));
    assert_eq!(page.data.skipped, 0);
    let now = parse_timestamp("2025-03-14T12:00:00Z").unwrap();
    let m: Vec<_> = page
        .data
        .items
        .into_iter()
        .map(|s| to_model(s, now).unwrap())
        .collect();
    assert_eq!(m[0].state, SessionState::Open);
    assert_eq!(m[0].owner_id, "2d8c1f0e-4b4b-4a53-9a8e-3c7d1e2f5a01");
    assert_eq!(m[0].owner_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(m[0].created, Some(1_741_944_413_123));
    assert_eq!(m[0].expires, parse_timestamp("2025-03-15T09:26:53.123Z"));
    // Unknown status, no expiry, `+00:00` timestamp, extra field: tolerated.
    assert_eq!(m[1].state, SessionState::Open);
    assert_eq!(m[1].expires, None);
    assert_eq!(m[1].created, parse_timestamp("2025-03-13T08:00:00Z"));
    assert_eq!(m[2].state, SessionState::Expired);
    // An OPEN session past its expiry is expired.
    let later = parse_timestamp("2025-03-16T00:00:00Z").unwrap();
    let page: wire::SessionPage = serde_json::from_str(&fixture("sessions_page.json")).unwrap();
    let first = page.data.items.into_iter().next().unwrap();
    assert_eq!(to_model(first, later).unwrap().state, SessionState::Expired);
}

#[test]
fn odd_pages_are_tolerated() {
    let page: wire::SessionPage = serde_json::from_str(
        r#"{"data":[{"session_id":"a","created_by":null,"status":null},42,{"created_by":{}}],"has_more":null,"total":-1}"#,
    )
    .unwrap();
    assert!(!page.has_more);
    assert_eq!(page.total, None);
    assert_eq!(page.data.skipped, 1);
    let a = to_model(page.data.items[0].clone(), 0).unwrap();
    assert_eq!(
        (a.owner_id.as_str(), a.owner_name.clone(), a.state),
        ("unknown", None, SessionState::Open)
    );
    assert!(
        to_model(page.data.items[1].clone(), 0).is_none(),
        "no session_id"
    );
}

#[test]
fn status_files_and_validation_bodies() {
    let s: wire::SessionStatus = serde_json::from_str(
        r#"{"session_id":"x","expires_at":"2025-03-15T09:26:53Z","documentation_url":"u","ingestion_status":{"failed_files":2,"finished_files":40}}"#,
    )
    .unwrap();
    let i = s.ingestion_status.unwrap();
    assert_eq!((i.finished_files, i.failed_files), (Some(40), Some(2)));
    let f: wire::FilePage = serde_json::from_str(
        r#"{"data":[{"name":"a.pdf","ingestion_status":"PENDING","file_ingestion_id":"1","ingestion_status_reason":null}],"has_more":true,"total":57}"#,
    )
    .unwrap();
    assert_eq!(f.total, Some(57));
    let v: wire::ValidationError = serde_json::from_str(
        r#"{"detail":[{"type":"less_than_equal","loc":["query","limit"],"msg":"Input should be less than or equal to 100","input":"101","ctx":{"le":100}}]}"#,
    )
    .unwrap();
    assert_eq!(
        v.summary(),
        "query.limit: Input should be less than or equal to 100"
    );
}
