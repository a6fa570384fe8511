//! conclave-mpc: Conclave's MPC engine. No I/O in the protocol code.
//!
//! Malicious-secure SPDZ over the Ristretto scalar field: authenticated additive shares under one
//! MAC key, Beaver multiplication layer by layer, and a batched, serialised MAC check before any
//! output is returned. Protocols are sans-IO state machines ([`session::Session`]); a thin async
//! [`driver`] runs them over any [`transport::Transport`].
//!
//! - [`field`]: F_l in Montgomery form, canonical encoding, conversion to dalek `Scalar`.
//! - [`share`]: authenticated shares, MAC key shares, linear operations.
//! - [`circuit`], [`schedule`]: the circuit IR, builder, validation and depth scheduling.
//! - [`prep`]: the preprocessing interface the online phase consumes.
//! - [`ot`], [`mascot`]: OT and MASCOT preprocessing (triples, masks, randoms) with its pool.
//! - [`bits`]: random bits by the square-root trick.
//! - [`gadgets`]: comparison, truncation and equality from random bits and masked openings.
//! - [`lang`]: Tally, the program language, compiled to the circuit IR.
//! - [`wire`], [`commit`]: frames and commitments.
//! - [`mac_check`], [`session`]: the online-phase state machines.
//! - [`transport`], [`driver`]: the transport trait, in-memory channels and the async driver
//!   for any round-based [`driver::Protocol`].
//! - `dealer` (feature `insecure-dealer`, tests and benches only): a trusted dealer.

pub mod alloc;
pub mod bits;
pub mod circuit;
pub mod commit;
#[cfg(feature = "insecure-dealer")]
pub mod dealer;
pub mod driver;
pub mod field;
pub mod gadgets;
pub mod lang;
pub mod mac_check;
pub mod mascot;
pub mod ot;
pub mod prep;
mod rounds;
pub mod schedule;
pub mod session;
pub mod share;
pub mod transport;
pub mod wire;

pub use circuit::{Circuit, CircuitBuilder, Wire};
pub use field::Fp;
pub use session::{Abort, Session, SessionConfig};
pub use share::{PartyId, Share};
