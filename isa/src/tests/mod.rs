//! The crate's tests: round trips, decoder robustness, verifier, chip description, docs.

mod asm_errors;
mod chip;
mod docs;
mod example;
mod exec;
mod robust;
mod roundtrip;
mod verifier;
