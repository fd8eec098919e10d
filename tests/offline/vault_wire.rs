//! The seed examples (vendor documentation pages) decode exactly.

use upload_session_exporter::kinds::vault::{to_model, wire};
use upload_session_exporter::model::{parse_timestamp, SessionState};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/vault/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn list(name: &str) -> Vec<wire::UploadSession> {
    let body = fixture(name);
    let env: wire::Envelope = serde_json::from_str(&body).unwrap();
    assert_eq!(env.response_status.as_deref(), Some("SUCCESS"));
    let l: wire::Lenient<wire::UploadSession> =
        serde_json::from_str(env.data.unwrap().get()).unwrap();
    assert_eq!(l.skipped, 0);
    l.items
}

#[test]
fn seed_000_and_001_list_sessions() {
    for seed in ["seed_000.json", "seed_001.json"] {
        let sessions = list(seed);
        assert_eq!(sessions.len(), 3);
        let first = &sessions[0];
        assert_eq!(
            first.path.as_deref(),
            Some("/u10001400/Gludacta-2021/Gludacta-Flyer.docx")
        );
        assert_eq!(
            first.id.as_deref(),
            Some("yYFg7jN_fZBmUD9Tj98RkL2yqtbTdIh17iy02nd5pby62oqVJLXv.R.ea1jSr786rgwpf7Vx3RmmQ--")
        );
        assert_eq!(first.owner, Some(10001400));
        assert_eq!(first.size, Some(1273267));
        assert_eq!(first.uploaded, Some(1273267));
        assert_eq!(first.uploaded_parts, Some(1));
        let uploaded: u64 = sessions.iter().map(|s| s.uploaded.unwrap()).sum();
        let size: u64 = sessions.iter().map(|s| s.size.unwrap()).sum();
        let parts: u64 = sessions.iter().map(|s| s.uploaded_parts.unwrap()).sum();
        assert_eq!((uploaded, size, parts), (11_759_027, 35_574_406, 3));

        let now = parse_timestamp("2020-10-08T00:00:00.000Z").unwrap();
        let m = to_model(sessions[2].clone(), now).unwrap();
        assert_eq!(m.owner_id, "10001400");
        assert_eq!(m.state, SessionState::Active);
        assert_eq!(m.expires, parse_timestamp("2020-10-10T19:30:18Z"));
        assert_eq!(m.created, Some(1_602_099_018_000));
        assert_eq!(m.last_upload, parse_timestamp("2020-10-07T19:38:29Z"));
        assert_eq!(
            (m.size, m.uploaded, m.parts),
            (Some(32_862_312), 10_485_760, 2)
        );
        let later = parse_timestamp("2020-10-11T00:00:00.000Z").unwrap();
        assert_eq!(
            to_model(sessions[2].clone(), later).unwrap().state,
            SessionState::Expired
        );
    }
}

#[test]
fn seed_002_session_details() {
    let body = fixture("seed_002.json");
    let env: wire::Envelope = serde_json::from_str(&body).unwrap();
    let s: wire::UploadSession = serde_json::from_str(env.data.unwrap().get()).unwrap();
    assert_eq!(s.size, Some(32862312));
    assert_eq!(s.uploaded, Some(10485760));
    assert_eq!(s.uploaded_parts, Some(2));
    assert_eq!(
        s.last_uploaded_date.as_deref(),
        Some("2020-10-07T19:38:29.000Z")
    );
}

#[test]
fn seed_003_parts_page() {
    let body = fixture("seed_003.json");
    let env: wire::Envelope = serde_json::from_str(&body).unwrap();
    let next = env
        .response_details
        .as_ref()
        .and_then(|d| d.next_page.clone())
        .unwrap();
    assert!(next.starts_with("https://myvault.veevavault.com/api/v21.1/services/file_staging/upload/98f46c04fa7a65ff2e5eaf90fdf613ab/parts?cursor="));
    let parts: wire::Lenient<wire::FilePart> =
        serde_json::from_str(env.data.unwrap().get()).unwrap();
    assert_eq!(parts.items.len(), 2);
    assert_eq!(parts.items[0].size, Some(5242880));
    assert_eq!(parts.items[1].part_number, Some(2));
    assert_eq!(
        parts.items[1].part_content_md5.as_deref(),
        Some("d6762077325b9ec3b75ada3b269e17d3")
    );
}

#[test]
fn odd_records_are_tolerated() {
    let body = r#"{"responseStatus":"SUCCESS","newField":{"x":1},"data":[
        {"id":"a","owner":null,"size":-5,"uploaded":"42","uploaded_parts":1.5,"extra":[1,2]},
        "not an object",
        {"owner":7,"size":10},
        {"id":"b","owner":7,"size":18446744073709551615,"uploaded":12884901888,"expiration_date":"garbage"}
    ]}"#;
    let env: wire::Envelope = serde_json::from_str(body).unwrap();
    let l: wire::Lenient<wire::UploadSession> =
        serde_json::from_str(env.data.unwrap().get()).unwrap();
    assert_eq!(l.skipped, 1);
    assert_eq!(l.items.len(), 3);
    let a = to_model(l.items[0].clone(), 0).unwrap();
    assert_eq!(
        (a.owner_id.as_str(), a.size, a.uploaded, a.parts),
        ("unknown", None, 42, 0)
    );
    assert!(to_model(l.items[1].clone(), 0).is_none(), "no id: skipped");
    let b = to_model(l.items[2].clone(), 0).unwrap();
    assert_eq!(
        (b.size, b.uploaded, b.expires),
        (Some(u64::MAX), 12_884_901_888, None)
    );
}

#[test]
fn failure_envelope_with_odd_data_still_decodes() {
    let body = r#"{"responseStatus":"FAILURE","errors":[{"type":"INVALID_SESSION_ID","message":"Invalid or expired session ID."}],"data":"???"}"#;
    let env: wire::Envelope = serde_json::from_str(body).unwrap();
    assert_eq!(
        env.errors[0].error_type.as_deref(),
        Some("INVALID_SESSION_ID")
    );
    let body = r#"{"responseStatus":"FAILURE","errors":null,"errorType":"USERNAME_OR_PASSWORD_INCORRECT"}"#;
    let auth: wire::AuthResponse = serde_json::from_str(body).unwrap();
    assert!(auth.errors.is_empty());
    assert_eq!(
        auth.error_type.as_deref(),
        Some("USERNAME_OR_PASSWORD_INCORRECT")
    );
}
