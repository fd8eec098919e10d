//! Writing samples in the Prometheus text exposition format (version 0.0.4).

use std::fmt::Write as _;

/// Appends one sample line `name{l1="v1",...} value\n` to `out`.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: Value) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            escape_label_value(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    value.write(out);
    out.push('\n');
}

/// A sample value. Integers are written exactly (byte counts above 2^53
/// would lose digits as `f64`); timestamps in milliseconds are written as
/// seconds with up to three decimals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    /// An unsigned integer.
    U(u64),
    /// A signed integer.
    I(i64),
    /// Milliseconds, written as seconds.
    Millis(i64),
    /// Any float.
    F(f64),
}

impl Value {
    fn write(self, out: &mut String) {
        match self {
            Value::U(n) => {
                let _ = write!(out, "{n}");
            }
            Value::I(n) => {
                let _ = write!(out, "{n}");
            }
            Value::Millis(ms) => {
                let (secs, frac) = (ms.div_euclid(1000), ms.rem_euclid(1000));
                if frac == 0 {
                    let _ = write!(out, "{secs}");
                } else if secs < 0 {
                    // -1.5 s is div_euclid -2 and rem 500: write it as a float.
                    let _ = write!(out, "{}", ms as f64 / 1000.0);
                } else {
                    // Three decimals without trailing zeros, written in
                    // place (no temporary string).
                    let (digits, width) = match frac {
                        f if f % 100 == 0 => (f / 100, 1),
                        f if f % 10 == 0 => (f / 10, 2),
                        f => (f, 3),
                    };
                    let _ = write!(out, "{secs}.{digits:0width$}");
                }
            }
            Value::F(f) => {
                if f.is_nan() {
                    out.push_str("NaN");
                } else if f.is_infinite() {
                    out.push_str(if f > 0.0 { "+Inf" } else { "-Inf" });
                } else {
                    let _ = write!(out, "{f}");
                }
            }
        }
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends the `# HELP` and `# TYPE` lines of a family.
pub fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    // HELP text escapes backslash and newline.
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(labels: &[(&str, &str)], v: Value) -> String {
        let mut s = String::new();
        sample(&mut s, "m", labels, v);
        s
    }

    #[test]
    fn values_are_exact() {
        assert_eq!(line(&[], Value::U(u64::MAX)), "m 18446744073709551615\n");
        assert_eq!(line(&[], Value::I(-3)), "m -3\n");
        assert_eq!(
            line(&[], Value::Millis(1_602_354_775_000)),
            "m 1602354775\n"
        );
        assert_eq!(
            line(&[], Value::Millis(1_602_354_775_250)),
            "m 1602354775.25\n"
        );
        assert_eq!(line(&[], Value::Millis(5)), "m 0.005\n");
        assert_eq!(line(&[], Value::Millis(50)), "m 0.05\n");
        assert_eq!(line(&[], Value::Millis(1_010)), "m 1.01\n");
        assert_eq!(line(&[], Value::Millis(1_100)), "m 1.1\n");
        assert_eq!(line(&[], Value::Millis(1_999)), "m 1.999\n");
        assert_eq!(line(&[], Value::Millis(-1500)), "m -1.5\n");
        assert_eq!(line(&[], Value::Millis(-2000)), "m -2\n");
        assert_eq!(line(&[], Value::F(0.25)), "m 0.25\n");
        assert_eq!(line(&[], Value::F(f64::NAN)), "m NaN\n");
        assert_eq!(line(&[], Value::F(f64::NEG_INFINITY)), "m -Inf\n");
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(
            line(&[("a", "x"), ("b", "q\"\\\nz")], Value::U(1)),
            "m{a=\"x\",b=\"q\\\"\\\\\\nz\"} 1\n"
        );
    }
}
