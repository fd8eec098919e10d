//! upload_session_exporter: a Prometheus exporter for resumable upload
//! sessions on Veeva Vault / SiteVault File Staging (and deepset Cloud).
//!
//! How the pieces fit:
//! - [`config`] reads and validates the TOML file (secrets from env/files);
//! - [`upstream`] holds one client per API ([`upstream::vault`],
//!   [`upstream::deepset`]) with the
//!   wire types in its `wire` module, and the shared HTTP plumbing;
//! - [`model`] is the upstream-neutral session the rest works on;
//! - [`poller`] runs one loop per target, keeps the history needed for
//!   stall detection and renders the target's series;
//! - [`metrics`] defines every metric family and assembles `/metrics`;
//! - [`server`] serves the prepared bytes; [`app`] wires it all together;
//! - [`report`] is the `sessions` terminal view;
//! - [`sim`] is a simulator of the upstream APIs for `--demo` and tests.
#![warn(missing_docs)]

pub mod app;
pub mod config;
pub mod demo;
pub mod logging;
pub mod metrics;
pub mod model;
pub mod poller;
pub mod report;
pub mod secret;
pub mod server;
pub mod shard;
pub mod sim;
pub mod upstream;
pub mod web;
