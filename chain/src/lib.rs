//! conclave-chain: Conclave on an EVM chain.
//!
//! Not built yet (issue 5). It will hold the Solidity contracts (`NodeRegistry`, `ProjectRegistry`,
//! `TaskRouter`), their committed compiled artifacts, `alloy::sol!` bindings, EIP-712 result signing,
//! and one `Chain` interface with two backends: JSON-RPC (anvil or any endpoint) and an embedded revm
//! devnet running the same bytecode.
