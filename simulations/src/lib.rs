//! conclave-sim: many Conclave nodes in one process.
//!
//! Not built yet (issue 6). It will hold the scenario runner (`conclave-sim <scenario.toml>`), the
//! quickstart, faults, latency, churn, cheating parties, and JSON/CSV/plot output.
