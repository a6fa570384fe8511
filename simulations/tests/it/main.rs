//! The simulations crate's integration tests, in one binary so the workspace links one test
//! executable per crate instead of one per file.

mod byop;
mod committee;
mod halo2;
mod http_api;
mod privacy;
mod programs;
mod wasm;
