//! The mpc crate's integration tests, in one binary so the workspace links one test
//! executable per crate instead of one per file.

mod cheating;
#[allow(dead_code)]
mod common;
mod field;
mod gadgets;
mod key_checks;
mod mascot;
mod mascot_cheating;
mod programs;
mod random_circuits;
mod untrusted_bytes;
