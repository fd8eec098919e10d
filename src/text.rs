//! Upstream text made safe to show: control characters replaced, length
//! cut on character boundaries. Used wherever upstream strings are printed
//! or rendered.

/// Replaces control characters (terminal escapes, newlines) so upstream
/// text cannot move the cursor or break a line; keeps every other
/// character.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// At most `max` characters: the start, then "…".
pub fn cut_end(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some(_) => {
            let end = s.char_indices().nth(max - 1).map_or(s.len(), |(i, _)| i);
            format!("{}…", &s[..end])
        }
    }
}

/// At most `max` characters: "…", then the end (paths keep their file name).
pub fn cut_start(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let skip = n - (max - 1);
    let start = s.char_indices().nth(skip).map_or(s.len(), |(i, _)| i);
    format!("…{}", &s[start..])
}
