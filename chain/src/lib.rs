//! conclave-chain: Conclave on an EVM chain.
//!
//! The Solidity contracts live in `chain/contracts` and are compiled by the pinned solc-js
//! (`chain/scripts/compile.mjs`) into the committed `chain/artifacts`, from which [`bindings`] are
//! generated; Rust builds never need Node. One [`Chain`] interface has two backends: JSON-RPC
//! ([`rpc`]) and an in-process revm devnet ([`embedded`]).
//!
//! - [`backend`]: the `Chain` trait and its types.
//! - [`embedded`], [`rpc`]: the two backends; [`anvil`] starts a local anvil.
//! - [`bindings`]: `sol!` bindings; [`contracts`]: typed calls with decoded reverts.
//! - [`sortition`]: committee seats (twin of `Sortition.sol`); [`identity`]: what binds a
//!   node's operator, peer id and input key.
//! - [`attest`]: EIP-712 result signatures; [`deploy`]: deployment and its addresses file;
//!   [`watch`]: confirmed `ResultPublished` events.

pub mod anvil;
pub mod attest;
pub mod backend;
pub mod bindings;
pub mod contracts;
pub mod deploy;
pub mod embedded;
pub mod identity;
pub mod rpc;
pub mod sortition;
pub mod watch;

pub use backend::{Chain, ChainError, DevChain};
pub use contracts::{ContractError, Contracts, Revert};
pub use deploy::{Addresses, DeployConfig, deploy};
pub use embedded::EmbeddedChain;
pub use rpc::RpcChain;
