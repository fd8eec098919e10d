//! Upstream text is untrusted: an upstream, or a proxy in front of it, may
//! reflect the request in its error page (the login form with the password,
//! the `Authorization` header with the API key or the Vault session id).
//! Every text taken from an upstream answer into a [`FetchError`] goes
//! through the target's [`Redactor`] first: the client holds it and uses it
//! where it builds the error, so that whatever prints the error later (logs,
//! `--once`, `sessions`) never sees a secret, and never more than a bounded
//! number of characters.
//!
//! [`FetchError`]: super::FetchError

use std::collections::VecDeque;
use std::fmt;

use crate::secret::Secret;

/// What stands in for a secret.
pub const MASK: &str = "***";
/// Characters of an upstream body kept in an error (an HTTP error page).
pub const SNIPPET_CHARS: usize = 120;
/// Characters of an upstream message kept in an error (deepset `detail`,
/// Vault `responseMessage` / `errors[].message`).
pub const MESSAGE_CHARS: usize = 200;
/// Characters of a short upstream token kept (an error type, a status, a
/// host name, a Vault name).
pub const TOKEN_CHARS: usize = 64;
/// Previous Vault session ids still masked: an upstream may echo an old
/// one; older ones are long dead (Vault sessions end after inactivity), and
/// a client that logs in on every poll must not grow this without bound.
const SESSIONS_KEPT: usize = 16;

/// Masks a target's secrets in upstream text and bounds its length.
///
/// It knows the target's configured secrets (Vault password, deepset API
/// key) and the Vault session ids the client obtained. Each secret is also
/// looked for in the forms a reflecting upstream would write it in: form-
/// or percent-encoded (a reflected login body), JSON-escaped and
/// HTML-escaped.
#[derive(Clone, Default)]
pub struct Redactor {
    fixed: Vec<Secret>,
    sessions: VecDeque<Secret>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Redactor({} secrets, {} session ids)",
            self.fixed.len(),
            self.sessions.len()
        )
    }
}

impl Redactor {
    /// A redactor for these configured secrets.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        Redactor {
            fixed: secrets.into_iter().cloned().collect(),
            sessions: VecDeque::new(),
        }
    }

    /// Also masks this session id from now on (the previous ones stay
    /// masked, up to [`SESSIONS_KEPT`]).
    pub fn add_session(&mut self, session: &Secret) {
        if self.sessions.contains(session) {
            return;
        }
        if self.sessions.len() >= SESSIONS_KEPT {
            self.sessions.pop_front();
        }
        self.sessions.push_back(session.clone());
    }

    /// Every form of every secret to look for, longest first.
    fn needles(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.fixed.iter().chain(self.sessions.iter()) {
            for v in variants(s.expose()) {
                if !v.is_empty() && !out.contains(&v) {
                    out.push(v);
                }
            }
        }
        out.sort_by_key(|n| std::cmp::Reverse(n.len()));
        out
    }

    /// The start of an upstream body as one printable line of at most
    /// `max_chars` characters (and a `…` if cut), secrets masked.
    pub fn snippet(&self, body: &[u8], max_chars: usize) -> String {
        let needles = self.needles();
        let longest = needles.first().map_or(0, String::len);
        // The bytes whose characters can be shown (at most 4 bytes a
        // character), plus room for a secret that starts among them.
        let keep = max_chars.saturating_mul(4);
        let window = body.len().min(keep.saturating_add(longest));
        let cut = window < body.len();
        let text = String::from_utf8_lossy(&body[..window]);
        // A secret that runs past the window's end would be found only in
        // part: drop the window's last `longest` bytes when it was cut, so
        // that every secret starting in what is shown is found whole.
        let mut visible = if cut {
            text.len().saturating_sub(longest)
        } else {
            text.len()
        };
        while !text.is_char_boundary(visible) {
            visible -= 1;
        }
        let mut spans: Vec<(usize, usize)> = needles
            .iter()
            .flat_map(|n| {
                text.match_indices(n.as_str())
                    .map(|(i, m)| (i, i + m.len()))
            })
            .filter(|(start, _)| *start < visible)
            .collect();
        spans.sort_unstable();
        let mut masked = String::with_capacity(visible.min(keep));
        let mut at = 0;
        for (start, end) in spans {
            if end <= at {
                continue; // inside a span already masked
            }
            if start >= at {
                masked.push_str(&text[at..start]);
                masked.push_str(MASK);
            }
            at = end;
        }
        if at < visible {
            masked.push_str(&text[at..visible]);
        }
        one_line(&masked, max_chars, cut)
    }

    /// An upstream message (already decoded text), secrets masked, as one
    /// line of at most `max_chars` characters.
    pub fn text(&self, text: &str, max_chars: usize) -> String {
        self.snippet(text.as_bytes(), max_chars)
    }
}

/// Control characters become spaces, runs of white space one space; cut to
/// `max_chars` characters with a `…`.
fn one_line(text: &str, max_chars: usize, cut: bool) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 4));
    let mut chars = 0;
    let mut pending_space = false;
    let mut more = cut;
    for c in text.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        let need = usize::from(pending_space) + 1;
        if chars + need > max_chars {
            more = true;
            break;
        }
        if pending_space {
            out.push(' ');
            chars += 1;
            pending_space = false;
        }
        out.push(c);
        chars += 1;
    }
    if more {
        out.push('…');
    }
    out
}

/// The forms a secret takes when an upstream reflects a request: as sent
/// in a header, form-encoded (the login body), percent-encoded with upper-
/// or lower-case hex, JSON-escaped and HTML-escaped.
fn variants(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let percent = form.replace('+', "%20");
    let json = serde_json::to_string(secret)
        .ok()
        .and_then(|q| q.get(1..q.len().saturating_sub(1)).map(str::to_owned))
        .unwrap_or_default();
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let html_hex = html.replace("&#39;", "&#x27;");
    vec![
        secret.to_owned(),
        lower_hex(&form),
        lower_hex(&percent),
        form,
        percent,
        json,
        html,
        html_hex,
    ]
}

/// `%2B` → `%2b`: some servers re-encode with lower-case hex digits.
fn lower_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            if c == '%' {
                hex_left = 2;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lower-case hex escapes end after two digits: the letters after them
    /// keep their case, so `A%2bB` is found, not `A%2bb`.
    #[test]
    fn lower_case_escapes_of_a_secret_are_masked() {
        let r = Redactor::new([&Secret::new("A+B")]);
        assert_eq!(r.text("pw=A%2bB;", 100), "pw=***;");
        assert_eq!(r.text("pw=A%2BB;", 100), "pw=***;");
    }

    /// A blank secret masks nothing (an empty needle matches everywhere).
    #[test]
    fn a_blank_secret_masks_nothing() {
        let r = Redactor::new([&Secret::new(""), &Secret::new("pw")]);
        assert_eq!(r.text("abc pw", 100), "abc ***");
    }

    fn red(secrets: &[&str]) -> Redactor {
        let s: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
        Redactor::new(&s)
    }

    #[test]
    fn snippet_is_one_short_line() {
        let r = Redactor::default();
        assert_eq!(
            r.snippet(b"<html>\n<body>Bad  gateway</body>", SNIPPET_CHARS),
            "<html> <body>Bad gateway</body>"
        );
        let long = "x".repeat(500);
        let s = r.snippet(long.as_bytes(), SNIPPET_CHARS);
        assert_eq!(s.chars().count(), 121);
        assert!(s.ends_with('…'));
        assert_eq!(r.snippet(&[0xff, 0xfe, b'a'], 10), "\u{fffd}\u{fffd}a");
        assert_eq!(r.snippet(b"", 10), "");
        assert_eq!(r.snippet(b"  \r\n ", 10), "");
    }

    #[test]
    fn secrets_are_masked_in_every_reflected_form() {
        let r = red(&["pa ss&w+rd\"<é>'", "key-123"]);
        for (body, want) in [
            ("password=pa ss&w+rd\"<é>'!", "password=***!"),
            (
                "username=u&password=pa+ss%26w%2Brd%22%3C%C3%A9%3E%27",
                "username=u&password=***",
            ),
            ("p=pa%20ss%26w%2brd%22%3c%c3%a9%3e%27;", "p=***;"),
            (r#"{"echo":"pa ss&w+rd\"<é>'"}"#, r#"{"echo":"***"}"#),
            (
                "<pre>pa ss&amp;w+rd&quot;&lt;é&gt;&#39;</pre>",
                "<pre>***</pre>",
            ),
            (
                "<pre>pa ss&amp;w+rd&quot;&lt;é&gt;&#x27;</pre>",
                "<pre>***</pre>",
            ),
            (
                "Authorization: Bearer key-123\nkey-123key-123",
                "Authorization: Bearer *** ******",
            ),
        ] {
            assert_eq!(r.snippet(body.as_bytes(), 200), want, "{body}");
        }
    }

    #[test]
    fn session_ids_are_masked_once_added_and_stay_masked() {
        let mut r = red(&["pw"]);
        assert_eq!(
            r.text("Authorization: sess-1", 100),
            "Authorization: sess-1"
        );
        r.add_session(&Secret::new("sess-1"));
        r.add_session(&Secret::new("sess-2"));
        assert_eq!(r.text("sess-1 sess-2 pw", 100), "*** *** ***");
        for i in 0..100 {
            r.add_session(&Secret::new(format!("other-{i}")));
        }
        assert_eq!(r.sessions.len(), SESSIONS_KEPT);
    }

    #[test]
    fn a_secret_cut_by_the_length_bound_is_not_shown_in_part() {
        let secret = "S3cret-Value-0123456789";
        let r = red(&[secret]);
        for pad in 0..140 {
            let body = format!("{}{secret} trailing text", "a".repeat(pad));
            let out = r.snippet(body.as_bytes(), 20);
            assert!(out.chars().count() <= 21, "{out}");
            assert!(!out.contains("S3c"), "pad {pad}: {out}");
            // Whitespace before the secret is collapsed: the secret may be
            // within the shown characters though far into the raw body.
            let body = format!("x{}{secret}", " ".repeat(pad * 10));
            let out = r.snippet(body.as_bytes(), 20);
            assert!(!out.contains("S3c"), "spaces {pad}: {out}");
        }
        assert_eq!(format!("{r:?}"), "Redactor(1 secrets, 0 session ids)");
    }

    #[test]
    fn long_text_is_bounded() {
        let r = red(&["k"]);
        let out = r.text(&"é".repeat(100_000), MESSAGE_CHARS);
        assert_eq!(out.chars().count(), MESSAGE_CHARS + 1);
    }
}
