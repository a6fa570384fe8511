//! `alloy::sol!` bindings generated from the committed artifacts (ABI and bytecode) in
//! `chain/artifacts`, so Rust builds never need Node or solc.

// The generated event constructors take one argument per field (`ResultPublished` has eight).
#![allow(clippy::too_many_arguments)]

alloy::sol!(
    #[sol(all_derives)]
    NodeRegistry,
    "artifacts/NodeRegistry.json"
);

alloy::sol!(
    #[sol(all_derives)]
    ProjectRegistry,
    "artifacts/ProjectRegistry.json"
);

alloy::sol!(
    #[sol(all_derives)]
    TaskRouter,
    "artifacts/TaskRouter.json"
);
