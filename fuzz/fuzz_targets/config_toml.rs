//! The configuration parser: any text gives a configuration or an error
//! that names the file (and never a secret).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_session_exporter::config::{parse_str, Environment};

struct Env;

impl Environment for Env {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "PW" | "DEMO_VAULT_PASSWORD" => Some("fuzz-secret-pw".into()),
            "KEY" | "DEMO_DEEPSET_API_KEY" => Some("fuzz-secret-key".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = parse_str(&text, "fuzz.toml", &Env) {
        let msg = e.to_string();
        assert!(msg.starts_with("fuzz.toml: "), "{msg}");
        assert!(!msg.contains("fuzz-secret"), "{msg}");
    }
});
