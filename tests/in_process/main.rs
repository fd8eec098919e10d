//! Tests that run the exporter and the simulator in this process over
//! loopback: polling, reloads, the /sessions page and upstream TLS. None
//! installs a logger, sets the environment or runs the exporter binary.
//!
//! One test binary for the files of this folder: the crate and its
//! dependencies are linked once for all of them instead of once per file
//! (docs/testing.md, "Test binaries and link time"). A test that needs a
//! process of its own (a global logger, the environment, timing, or slow
//! enough to run beside the others) stays a `tests/*.rs` file of its own.

#[path = "../common/mod.rs"]
mod common;

mod exporter_deepset;
mod exporter_s3;
mod exporter_vault;
mod label_caps;
mod sessions_page;
mod upstream_tls;
