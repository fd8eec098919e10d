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
            tracing::debug!(level = level.as_str(), "log level set");
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
                    .json()
                    .flatten_event(true)
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
