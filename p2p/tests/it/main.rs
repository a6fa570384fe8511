//! The p2p crate's integration tests, in one binary so the workspace links one test
//! executable per crate instead of one per file.

mod mesh;
mod mpc_channels;
mod processes;
