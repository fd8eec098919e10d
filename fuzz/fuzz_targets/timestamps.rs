//! `parse_timestamp`: any text; what it accepts is a real RFC 3339 time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upload_session_exporter::model::parse_timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(ms) = parse_timestamp(s) {
        // Years 0000–9999 only: within ±2^53 ms, so exact as f64 too.
        assert!(ms.unsigned_abs() < 1 << 53, "{s:?} -> {ms}");
        // Surrounding whitespace is ignored, nothing else is.
        assert_eq!(parse_timestamp(&format!(" {s}\n")), Some(ms));
    }
});
