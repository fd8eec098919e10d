//! The Vault login answer, the versions list and Retrieve User.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_session_exporter::kinds::vault::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = serde_json::from_slice::<wire::AuthResponse>(data) {
        let _ = (a.session_id, a.user_id, a.vault_id, a.vault_ids.len());
    }
    if let Ok(v) = serde_json::from_slice::<wire::VersionsResponse>(data) {
        let _ = v.values.keys().count();
    }
    if let Ok(u) = serde_json::from_slice::<wire::UsersResponse>(data) {
        for record in u.users.into_iter().filter_map(|n| n.user) {
            if let Some(name) = record.display_name() {
                assert!(!name.is_empty());
            }
        }
    }
});
