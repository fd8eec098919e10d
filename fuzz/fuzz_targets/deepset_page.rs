//! deepset's session page, session status, file page and 422 body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_session_exporter::kinds::deepset::{self, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(page) = serde_json::from_slice::<wire::SessionPage>(data) {
        for s in page.data.items {
            if let Some(m) = deepset::to_model(s, 1_700_000_000_000) {
                assert!(!m.id.is_empty());
                assert!(!m.owner_id.is_empty());
            }
        }
    }
    let _ = serde_json::from_slice::<wire::SessionStatus>(data);
    let _ = serde_json::from_slice::<wire::FilePage>(data);
    if let Ok(v) = serde_json::from_slice::<wire::ValidationError>(data) {
        let _ = v.summary();
    }
});
