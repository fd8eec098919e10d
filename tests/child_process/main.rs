//! Tests that run the built exporter (or cargo, promtool, systemd-analyze)
//! as a child process, or read the repository's files. None times the
//! child; the environment they set is the child's.
//!
//! One test binary for the files of this folder: the crate and its
//! dependencies are linked once for all of them instead of once per file
//! (docs/testing.md, "Test binaries and link time"). A test that needs a
//! process of its own (a global logger, the environment, timing, or slow
//! enough to run beside the others) stays a `tests/*.rs` file of its own.

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_output;
mod deploy_files;
mod packaging;
mod readme;
mod s3_cli;
mod s3_moto;
mod s3_virtual_host;
mod url_credentials;
