//! `kind = "deepset"`: upload sessions of one deepset Cloud (deepset AI
//! Platform) workspace.
//!
//! - [`client`]: the HTTP client (bearer API key, paging, ingestion counts);
//! - [`wire`]: the JSON it reads;
//! - this module: the target keys and the [`Source`] the poller drives.

pub mod client;
pub mod wire;

use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::kinds::{Kind, Source};
use crate::model::{Measure, Session, UnixMillis};
use crate::secret::Secret;
use crate::settings::{struct_fields, KindConfig, KindInput, SecretKeys, TargetConfig};
use crate::upstream::{FetchError, RequestLimiter};

pub use client::{endpoint, to_model, DeepsetClient, SESSION_FETCHES_AT_ONCE};

/// Default of `expired_window`.
pub const DEFAULT_EXPIRED_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The deepset kind (registered in [`crate::kinds::KINDS`]).
pub struct Deepset;

/// deepset-specific target settings.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepsetConfig {
    /// Workspace name.
    pub workspace: String,
    /// API key sent as a bearer token.
    pub api_key: Secret,
    /// How to page through the session list.
    pub pagination: Pagination,
    /// Sessions that expired this recently are still listed (state `expired`).
    pub expired_window: Duration,
}

impl DeepsetConfig {
    /// Settings with the defaults, for a workspace and API key.
    pub fn new(workspace: &str, api_key: Secret) -> Self {
        DeepsetConfig {
            workspace: workspace.into(),
            api_key,
            pagination: Pagination::Cursor,
            expired_window: DEFAULT_EXPIRED_WINDOW,
        }
    }
}

/// How the deepset session list is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pagination {
    /// `after` = the last session id seen (robust to changes between pages).
    Cursor,
    /// `page_number` = 1, 2, ...
    Page,
}

/// The keys of a deepset target.
#[derive(Debug, Default, Deserialize)]
struct RawDeepset {
    workspace: Option<String>,
    api_key_env: Option<String>,
    api_key_file: Option<String>,
    // Accepted only to refuse it with a precise message.
    api_key: Option<IgnoredAny>,
    pagination: Option<String>,
    expired_window: Option<String>,
}

impl Kind for Deepset {
    fn name(&self) -> &'static str {
        "deepset"
    }

    fn title(&self) -> &'static str {
        "deepset"
    }

    fn measure(&self) -> Measure {
        Measure::Files
    }

    fn example_url(&self) -> &'static str {
        "https://api.cloud.deepset.ai"
    }

    fn keys(&self) -> &'static [&'static str] {
        struct_fields::<RawDeepset>()
    }

    fn parse(&self, input: &mut KindInput<'_>) -> Option<Box<dyn KindConfig>> {
        let t: RawDeepset = input.keys()?;
        let workspace = input.required(
            t.workspace.as_deref(),
            "workspace",
            "the deepset workspace name",
        );
        let api_key = input.secret(SecretKeys {
            inline: t.api_key.is_some(),
            env: t.api_key_env.as_deref(),
            file: t.api_key_file.as_deref(),
            names: ("api_key", "api_key_env", "api_key_file"),
        });
        let pagination = match t.pagination.as_deref() {
            None | Some("cursor") => Pagination::Cursor,
            Some("page") => Pagination::Page,
            Some(other) => {
                input.problem(
                    "pagination",
                    format!(
                        "{other:?} is not a pagination style; use \"cursor\" (default) or \"page\""
                    ),
                );
                Pagination::Cursor
            }
        };
        let expired_window = input
            .duration(&t.expired_window, Duration::ZERO, "expired_window")
            .unwrap_or(DEFAULT_EXPIRED_WINDOW);
        Some(Box::new(DeepsetConfig {
            workspace,
            api_key: api_key?,
            pagination,
            expired_window,
        }))
    }

    fn source(
        &self,
        target: &TargetConfig,
        limiter: &RequestLimiter,
    ) -> Result<Box<dyn Source>, FetchError> {
        let cfg = target
            .settings::<DeepsetConfig>()
            .ok_or_else(|| FetchError::Connect {
                endpoint: "poll",
                detail: format!("target {:?} is not a deepset target", target.name),
            })?;
        Ok(Box::new(DeepsetClient::new(target, cfg, limiter)?))
    }
}

impl KindConfig for DeepsetConfig {
    fn kind_name(&self) -> &'static str {
        Deepset.name()
    }

    fn measure(&self) -> Measure {
        Deepset.measure()
    }

    fn secrets(&self) -> Vec<&Secret> {
        vec![&self.api_key]
    }
}

impl Source for DeepsetClient {
    fn fetch(&mut self, now: UnixMillis) -> BoxFuture<'_, Result<Vec<Session>, FetchError>> {
        Box::pin(DeepsetClient::fetch(self, now))
    }

    fn take_calls(&mut self) -> Vec<(&'static str, u64)> {
        DeepsetClient::take_calls(self)
    }
    // API keys need no logout; deepset sends no budget headers.
}
