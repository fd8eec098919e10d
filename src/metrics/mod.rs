//! The metric model: every family the exporter exposes, and the per-target
//! fragments that the poll tasks render and the [`exposition`] module joins.
//!
//! The text format requires all samples of a family to stand together, so a
//! target's rendering is kept per family ([`TargetFragment`]); assembling
//! the page is then only copying bytes in family order.

pub mod exposition;
pub mod memfd;
pub mod openmetrics;
#[cfg(target_os = "linux")]
pub mod process;
pub mod text;

/// `counter` or `gauge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic counter (`_total`).
    Counter,
    /// Gauge.
    Gauge,
}

macro_rules! families {
    ($( $variant:ident => $name:literal, $kind:ident, $help:literal; )*) => {
        /// Every per-target metric family, in exposition order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Family { $( #[doc = $help] $variant, )* }

        impl Family {
            /// All families in exposition order.
            pub const ALL: &'static [Family] = &[ $( Family::$variant, )* ];

            /// Full metric name.
            pub fn name(self) -> &'static str {
                match self { $( Family::$variant => $name, )* }
            }

            /// HELP text.
            pub fn help(self) -> &'static str {
                match self { $( Family::$variant => $help, )* }
            }

            /// Counter or gauge.
            pub fn kind(self) -> Kind {
                match self { $( Family::$variant => Kind::$kind, )* }
            }
        }
    };
}

families! {
    Sessions => "upload_session_sessions", Gauge,
        "Upload sessions by state, as listed in the target's last successful poll: active, open, closed or expired (which of them a kind reports is documented per kind).";
    UploadedBytes => "upload_session_uploaded_bytes", Gauge,
        "Sum of the bytes uploaded over the owner's listed sessions, expired but not yet purged ones included (last successful poll; kinds that count bytes).";
    SizeBytes => "upload_session_size_bytes", Gauge,
        "Sum of the declared sizes in bytes over the owner's listed sessions (last successful poll; kinds whose sessions declare a size).";
    UploadedParts => "upload_session_uploaded_parts", Gauge,
        "Sum of the parts uploaded over the owner's listed sessions (last successful poll; kinds that count bytes).";
    NextExpiry => "upload_session_next_expiry_timestamp_seconds", Gauge,
        "Earliest expiration time among the owner's live (active or open) sessions, Unix seconds.";
    TimeToExpiry => "upload_session_time_to_expiry_seconds", Gauge,
        "Earliest expiration minus the time of the last successful poll, in seconds (computed at poll time, negative once passed; prefer next_expiry_timestamp_seconds - time() in PromQL).";
    LastUpload => "upload_session_last_upload_timestamp_seconds", Gauge,
        "Latest time a part or file was uploaded among the owner's listed sessions, Unix seconds.";
    OldestCreated => "upload_session_oldest_created_timestamp_seconds", Gauge,
        "Earliest creation time among the owner's listed sessions, Unix seconds.";
    Stalled => "upload_session_stalled_sessions", Gauge,
        "Sessions not moving for the target's stall_after: active sessions with bytes missing, open sessions near expiry without new files, closed sessions whose ingestion is stuck.";
    AtRisk => "upload_session_at_risk_sessions", Gauge,
        "Active sessions that, at their upload rate over the last hour (since creation right after a restart), will not finish before they expire; with no progress at all, those expiring within the target's at_risk_horizon (kinds whose sessions declare a size).";
    AwaitingCommit => "upload_session_awaiting_commit_sessions", Gauge,
        "Active sessions with every declared byte uploaded but not committed yet: they expire and lose their parts if never committed (kinds whose sessions declare a size).";
    IngestedFiles => "upload_session_ingested_files", Gauge,
        "Files of the owner's listed sessions by ingestion result: finished, failed, pending (kinds that count files).";
    OwnerInfo => "upload_session_owner_info", Gauge,
        "The owner's display name where the API gives one; the value is always 1 (join on owner_id).";
    Ended => "upload_session_ended_total", Counter,
        "Sessions that stopped being live (active or open) since the exporter started, each counted once whether or not it is still listed: outcome=completed before its expiry (committed, aborted or closed), outcome=expired when its expiry passed first.";
    TargetUp => "upload_session_target_up", Gauge,
        "1 if the last poll of the target succeeded, else 0.";
    LastSuccess => "upload_session_last_success_timestamp_seconds", Gauge,
        "Time of the target's last successful poll, Unix seconds (0 before the first success).";
    PollDuration => "upload_session_poll_duration_seconds", Gauge,
        "Duration of the target's last poll, successful or not, in seconds.";
    PollErrors => "upload_session_poll_errors_total", Counter,
        "Failed polls of the target by reason: auth, timeout, connect, http_status, api_error, decode, rate_limited.";
    ApiRequests => "upload_session_api_requests_total", Counter,
        "Upstream API calls made for the target, by endpoint.";
    PollInterval => "upload_session_poll_interval_seconds", Gauge,
        "Time until the target's next poll as last scheduled, in seconds: poll_interval, or longer while backing off after failures or sparing the upstream's API budget.";
    ResponseDelay => "upload_session_api_response_delay_seconds", Gauge,
        "How long the upstream last said it delays responses, in seconds (Vault: X-VaultAPI-ResponseDelay; 0 when absent): it does so once its burst limit is spent.";
    BurstRemaining => "upload_session_api_burst_limit_remaining", Gauge,
        "Calls left in the upstream's current budget window as it last said (Vault: X-VaultAPI-BurstLimitRemaining, 5-minute window shared with every integration of that Vault).";
    AbortAfter => "upload_session_abort_after_seconds", Gauge,
        "Age at which the target's lifecycle rule aborts an incomplete upload under its prefix, in seconds (S3: the enabled AbortIncompleteMultipartUpload rule's DaysAfterInitiation x 86400, then rounded up to midnight UTC; absent when no rule covers the prefix).";
    BurstLimit => "upload_session_api_burst_limit", Gauge,
        "Calls allowed per budget window as the upstream last said (Vault: X-VaultAPI-BurstLimit, per 5 minutes).";
}

/// One target's samples, rendered per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFragment {
    families: Vec<String>,
}

impl TargetFragment {
    /// An empty fragment.
    pub fn new() -> Self {
        TargetFragment {
            families: vec![String::new(); Family::ALL.len()],
        }
    }

    /// An empty fragment whose buffers have room for `sizes` bytes per
    /// family (the sizes of the previous rendering: a target's fragment
    /// changes little between polls, so its buffers need not grow).
    pub fn with_capacities(sizes: &[usize]) -> Self {
        let mut f = TargetFragment::new();
        for (buf, &n) in f.families.iter_mut().zip(sizes) {
            if n > 0 {
                buf.reserve_exact(n + n / 8);
            }
        }
        f
    }

    /// Bytes rendered per family, for [`with_capacities`](Self::with_capacities).
    pub fn sizes(&self) -> Vec<usize> {
        self.families.iter().map(String::len).collect()
    }

    /// The buffer that samples of `family` are appended to.
    pub fn family_mut(&mut self, family: Family) -> &mut String {
        let i = family as usize;
        if self.families.len() <= i {
            self.families.resize(Family::ALL.len(), String::new());
        }
        &mut self.families[i]
    }

    /// The rendered samples of `family`.
    pub fn family(&self, family: Family) -> &str {
        self.families
            .get(family as usize)
            .map(String::as_str)
            .unwrap_or("")
    }

    /// Appends one sample of `family`.
    pub fn sample(&mut self, family: Family, labels: &[(&str, &str)], value: text::Value) {
        text::sample(self.family_mut(family), family.name(), labels, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_conventions() {
        let mut seen = std::collections::HashSet::new();
        for f in Family::ALL {
            assert!(f.name().starts_with("upload_session_"), "{}", f.name());
            assert_eq!(
                f.kind() == Kind::Counter,
                f.name().ends_with("_total"),
                "{}",
                f.name()
            );
            assert!(seen.insert(f.name()), "duplicate {}", f.name());
            assert!(!f.help().is_empty());
        }
    }
}
