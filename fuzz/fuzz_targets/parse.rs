//! Fuzz target: any bytes through the model front end (parse, lower, graph, fmt) must give
//! a graph or diagnostics, never a panic, and formatting must be idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    if let Err(errors) = snnc::compile_graph(source) {
        let _ = snnc::diagnostics::render("fuzz.snn", source, &errors);
    }
    if let Ok(formatted) = snnc::format_source(source) {
        assert_eq!(snnc::format_source(&formatted).ok().as_deref(), Some(formatted.as_str()));
    }
});
