//! Oblivious transfer: base OT over Ristretto, KOS OT extension, and their symmetric tools.

pub mod base;
pub mod gf2;
pub mod kos;
pub mod prg;
