//! Fuzz target: arbitrary bytes into the program decoder.
//!
//! `Program::from_bytes` must never panic and never allocate beyond the input's size; when it
//! accepts the input, re-encoding and decoding again must give the same program.

#![no_main]

use isa::Program;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Program::from_bytes(data) {
        Ok(p) => {
            let again = Program::from_bytes(&p.to_bytes());
            assert_eq!(again.as_ref(), Ok(&p), "re-encoding changed the program");
        }
        Err(e) => assert!(e.offset <= data.len(), "error offset {} past the input ({} bytes)", e.offset, data.len()),
    }
});
