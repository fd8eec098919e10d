//! upload_session_exporter: a Prometheus exporter for resumable upload
//! sessions on Veeva Vault / SiteVault File Staging (and deepset Cloud).
//!
//! How the pieces fit:
//! - [`config`] reads and validates the TOML file (secrets from env/files)
//!   into the [`settings`] each target runs with;
//! - [`kinds`] holds everything specific to one upstream API, a folder per
//!   kind ([`kinds::vault`], [`kinds::deepset`]) behind the traits of
//!   [`kinds`] and its registry [`kinds::KINDS`];
//! - [`upstream`] is the HTTP plumbing, errors and lenient decoding every
//!   kind shares;
//! - [`model`] is the upstream-neutral session the rest works on;
//! - [`poller`] runs one loop per target, keeps the history needed for
//!   stall detection and renders the target's series;
//! - [`metrics`] defines every metric family and assembles `/metrics`;
//! - [`server`] serves the prepared bytes; [`app`] wires it all together;
//! - [`report`] is the `sessions` terminal view; [`sessions`] is the row
//!   model it shares with the `/sessions` page and `/api/v1/sessions`, which
//!   render what the poller keeps on its board; [`text`] cuts upstream text;
//! - [`demo`] starts the simulator (crate `upload_session_sim`, feature
//!   `demo`) for `--demo`.
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod demo;
pub mod kinds;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod readiness;
pub mod report;
pub mod secret;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod shard;
pub mod text;
pub mod upstream;
pub mod web;
