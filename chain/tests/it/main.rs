//! The chain crate's integration tests, in one binary so the workspace links one test
//! executable per crate instead of one per file.

mod artifacts;
mod client;
mod equivocation;
mod gas;
mod identity;
mod opening;
mod retries;
mod scenario;
mod sortition_equivalence;
#[allow(dead_code)]
mod support;
