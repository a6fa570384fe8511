//! conclave-node: the `conclave` daemon and its parts.
//!
//! - [`node`]: a running node (mesh, chain, store, HTTP API) and its loops.
//! - [`coordinator`]: opening a task, forming its committee, closing, computing, submitting.
//! - [`member`]: a committee member's side: preprocessing, sealed shares, inputs, computing.
//! - [`entry`]: what an entry node does for a device; [`api`]: the HTTP API; [`client`]: the
//!   device library.
//! - [`task`]: the task state machine (sans-IO); [`store`]: redb; [`messages`]: node-to-node
//!   requests; [`envelope`]: X25519 + ChaCha20-Poly1305; [`program`]: what projects run (their
//!   sources travel by hash, `programs`); [`manifest`]: a `wasm` project's program, naming its
//!   module (modules travel by hash, `modules`); [`agreement`]: which output t seats signed;
//!   [`receiver`]: private outputs sealed for a project's receiver;
//!   [`metrics`]: Prometheus; [`sweep`]: deleting finished tasks' material.

pub mod agreement;
pub mod api;
pub mod byop;
pub mod client;
pub mod committee;
pub mod config;
pub mod coordinator;
pub mod entry;
pub mod envelope;
pub mod halo2;
pub mod identity;
pub mod keys;
pub mod manifest;
pub mod member;
pub mod messages;
pub mod metrics;
pub(crate) mod modules;
pub mod node;
pub mod program;
pub(crate) mod programs;
pub mod ratelimit;
pub mod receiver;
pub mod store;
pub mod sweep;
pub mod task;
pub mod w3bstream;

pub use node::{Node, NodeError, NodeSetup};

/// Runs a binary's `main` on a multi-threaded runtime, after tuning the allocator for MPC's bulk
/// buffers ([`conclave_mpc::alloc`]), which must happen before the runtime's threads start.
pub fn run_main<T>(
    main: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    conclave_mpc::alloc::keep_bulk_buffers();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(main)
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line (for journald, Loki, Elasticsearch and the like).
    Json,
}

/// Structured logs to stderr; `RUST_LOG` overrides `default` (an env-filter directive). Colour
/// codes only go to a terminal: in a file or a pipe they are noise.
pub fn init_logging(default: &str, format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}
