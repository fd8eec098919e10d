//! Tests that need no network, no child process and no process-wide state:
//! the architecture rules, the wire decoders and the property tests.
//!
//! One test binary for the files of this folder: the crate and its
//! dependencies are linked once for all of them instead of once per file
//! (docs/testing.md, "Test binaries and link time"). A test that needs a
//! process of its own (a global logger, the environment, timing, or slow
//! enough to run beside the others) stays a `tests/*.rs` file of its own.

mod architecture;
mod deepset_wire;
mod proptest_config;
mod proptest_decoders;
mod vault_wire;
