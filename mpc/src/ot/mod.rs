//! Oblivious transfer: base OT over Ristretto, punctured seed trees, SoftSpokenOT extension, and
//! their symmetric tools.

pub mod aes;
pub mod base;
pub mod gf2;
pub mod ggm;
pub mod prg;
pub mod softspoken;
