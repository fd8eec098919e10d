//! upload_session_exporter: a Prometheus exporter for resumable upload sessions.
pub mod config;
pub mod model;
pub mod secret;
pub mod sim;
pub mod upstream;
