//! Log output: logfmt (the default of the Prometheus ecosystem) or JSON.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `ts=... level=info msg="..." key=value`.
    Logfmt,
    /// One JSON object per line.
    Json,
}

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    /// Everything, including each upstream call.
    Debug,
    /// Start, stop, failures and recoveries.
    Info,
    /// Failures only.
    Warn,
    /// Errors only.
    Error,
}

impl LogLevel {
    /// Parses `debug`, `info`, `warn`, `error`.
    pub fn parse(s: &str) -> Option<LogLevel> {
        match s.trim() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    /// The name, as `--log.level` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// The filter for a level. The HTTP libraries stay at info at most: their
/// debug output is noise for an operator and could include request details.
pub fn filter(level: LogLevel) -> EnvFilter {
    let deps = match level {
        LogLevel::Debug | LogLevel::Info => "info",
        other => other.as_str(),
    };
    EnvFilter::new(format!(
        "{},hyper={deps},hyper_util={deps},reqwest={deps},rustls={deps},h2={deps}",
        level.as_str()
    ))
}

/// Changes the log level of the running process.
#[derive(Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The level of `--log.level`, used when the configuration sets none.
    flag: LogLevel,
}

impl LogControl {
    /// Applies the configuration's level, or the flag's when it has none.
    pub fn set(&self, level: Option<LogLevel>) {
        let level = level.unwrap_or(self.flag);
        if self.handle.reload(filter(level)).is_ok() {
            tracing::debug!(log_level = level.as_str(), "log level set");
        }
    }
}

/// Installs the global subscriber (stderr). Call once, from `main`.
pub fn init(level: LogLevel, format: LogFormat) -> Option<LogControl> {
    let (filter_layer, handle) = reload::Layer::new(filter(level));
    let registry = tracing_subscriber::registry().with(filter_layer);
    let installed = match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Json)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Logfmt => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(Logfmt)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    installed.ok().map(|_| LogControl {
        handle,
        flag: level,
    })
}

/// A logfmt event formatter.
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let meta = event.metadata();
        write!(
            w,
            "ts={ts} level={}",
            meta.level().as_str().to_ascii_lowercase()
        )?;
        let mut v = Fields::default();
        event.record(&mut v);
        if let Some(msg) = v.message {
            write!(w, " msg={}", quote(&msg))?;
        }
        for (k, val) in v.fields {
            write!(w, " {k}={}", quote(&val))?;
        }
        writeln!(w)
    }
}

/// A JSON event formatter: one object per line, every key once.
///
/// The keys are those tracing-subscriber's JSON layer used (`timestamp`,
/// `level`, `message`, then the event's fields), except that the module path
/// is `module`: as `target` it repeated the key of the failing target's name,
/// and jq, Python, Loki and Vector keep only the last of two equal keys. A
/// field whose name is taken gets a `_2`, `_3`... suffix instead.
pub struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let meta = event.metadata();
        let mut v = JsonFields::default();
        event.record(&mut v);
        let mut obj = UniqueKeys::default();
        obj.push("timestamp", serde_json::Value::String(ts));
        obj.push("level", serde_json::Value::String(meta.level().to_string()));
        if let Some(msg) = v.message {
            obj.push("message", msg);
        }
        for (k, val) in v.fields {
            obj.push(k, val);
        }
        obj.push(
            "module",
            serde_json::Value::String(meta.target().to_string()),
        );
        obj.write(&mut w)
    }
}

/// An object that never repeats a key, in the order the keys came.
#[derive(Default)]
struct UniqueKeys {
    entries: Vec<(String, serde_json::Value)>,
}

impl UniqueKeys {
    fn push(&mut self, key: &str, value: serde_json::Value) {
        let taken = |name: &str| self.entries.iter().any(|(k, _)| k == name);
        let mut name = key.to_string();
        let mut n = 2;
        while taken(&name) {
            name = format!("{key}_{n}");
            n += 1;
        }
        self.entries.push((name, value));
    }

    fn write(&self, w: &mut Writer<'_>) -> fmt::Result {
        w.write_char('{')?;
        for (i, (k, v)) in self.entries.iter().enumerate() {
            if i > 0 {
                w.write_char(',')?;
            }
            // Strings and values serialize infallibly; `Value`'s Display is JSON.
            write!(w, "{}:{v}", serde_json::Value::String(k.clone()))?;
        }
        w.write_str("}\n")
    }
}

/// Event fields as JSON values (numbers and booleans stay typed).
#[derive(Default)]
struct JsonFields {
    message: Option<serde_json::Value>,
    fields: Vec<(&'static str, serde_json::Value)>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for JsonFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| value.to_string().into(), serde_json::Value::Number);
        self.put(field, v);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: String) {
        if field.name() == "message" {
            self.message = Some(value);
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

/// Quotes a logfmt value when it needs it.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && !s
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
    {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logfmt_quoting() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("say \"hi\"\n"), "\"say \\\"hi\\\"\\n\"");
    }
}
