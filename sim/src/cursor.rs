//! Opaque, tamper-evident page cursors for List File Parts, shaped like
//! Vault's (`<base64>:<base64>`, so clients must URL-encode `+`, `/`, `=`).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use md5::{Digest, Md5};

/// Cursor pointing after `after` parts of session `session_id`.
pub(crate) fn encode(key: &[u8; 16], session_id: &str, after: u32) -> String {
    let mut payload = after.to_be_bytes().to_vec();
    payload.extend_from_slice(&tag(key, session_id, after));
    format!(
        "{}:{}",
        b64_encode(&session_tag(key, session_id)),
        b64_encode(&payload)
    )
}

/// The part count a cursor points after, if it was made by [`encode`] for
/// this session.
pub(crate) fn decode(key: &[u8; 16], session_id: &str, cursor: &str) -> Option<u32> {
    let (head, tail) = cursor.split_once(':')?;
    if b64_decode(head)? != session_tag(key, session_id) {
        return None;
    }
    let payload = b64_decode(tail)?;
    if payload.len() != 20 {
        return None;
    }
    let after = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
    (payload[4..] == tag(key, session_id, after)).then_some(after)
}

fn session_tag(key: &[u8; 16], session_id: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(key);
    h.update(session_id.as_bytes());
    h.finalize().into()
}

fn tag(key: &[u8; 16], session_id: &str, after: u32) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(session_id.as_bytes());
    h.update(after.to_be_bytes());
    h.update(key);
    h.finalize().into()
}

/// Standard base64 with padding.
fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// Inverse of [`b64_encode`]; `None` on anything malformed.
fn b64_decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(b64_decode(&b64_encode(&data)), Some(data));
        }
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_decode("Zm8"), None);
        assert_eq!(b64_decode("Z=m8"), None);
        assert_eq!(b64_decode("Zm*="), None);
    }

    #[test]
    fn cursor_round_trip_and_tamper() {
        let key = [7u8; 16];
        let c = encode(&key, "abc", 42);
        assert_eq!(decode(&key, "abc", &c), Some(42));
        assert_eq!(decode(&key, "abd", &c), None);
        assert_eq!(decode(&[8u8; 16], "abc", &c), None);
        assert_eq!(decode(&key, "abc", "junk"), None);
        assert_eq!(decode(&key, "abc", ":"), None);
        let forged = encode(&key, "abc", 43);
        let (h, _) = c.split_once(':').unwrap_or_default();
        let (_, t) = forged.split_once(':').unwrap_or_default();
        assert_eq!(decode(&key, "abc", &format!("{h}:{t}")), Some(43));
        assert_eq!(decode(&key, "abc", &format!("{h}:{}", &t[1..])), None);
    }
}
