//! conclave-node: the `conclave` daemon and CLI.
//!
//! Not built yet (issue 6). It will hold configuration, redb storage, the HTTP API, committee
//! selection, the sans-IO task state machine (`Pending → Committee → Running → Attesting →
//! Published | Failed`) and the `conclave` binary. No binary is shipped until it works.
