//! List Upload Sessions (and the other `data` payloads) as the Vault client
//! decodes them: the envelope, then `data` (in one pass when every entry fits,
//! else entry by entry: both must agree), then the model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_session_exporter::kinds::vault::{self, wire};

fuzz_target!(|data: &[u8]| {
    let Ok(env) = serde_json::from_slice::<wire::Envelope>(data) else {
        return;
    };
    let _ = (&env.response_status, &env.errors, &env.error_type);
    let _ = env.response_details.as_ref().map(|d| &d.next_page);
    let Some(raw) = env.data else { return };
    let by_entry = serde_json::from_str::<wire::Lenient<wire::UploadSession>>(raw.get());
    let fast = wire::Lenient::<wire::UploadSession>::from_slice(raw.get().as_bytes());
    match (&by_entry, &fast) {
        (Ok(a), Ok(b)) => assert!(a.items == b.items && a.skipped == b.skipped),
        (Err(_), Err(_)) => {}
        _ => panic!("the one-pass and entry-by-entry decodings disagree"),
    }
    if let Ok(list) = fast {
        for s in list.items {
            if let Some(m) = vault::to_model(s, 1_700_000_000_000) {
                // Every decoded session has an id (entries without one are skipped).
                assert!(!m.id.is_empty());
            }
        }
    }
    if let Ok(s) = serde_json::from_str::<wire::UploadSession>(raw.get()) {
        let _ = vault::to_model(s, i64::MAX);
    }
    let _ = serde_json::from_str::<wire::Lenient<wire::FilePart>>(raw.get());
});
