//! The chip description: defaults, partial overrides, and one test per validation rule.

use crate::Buf;
use crate::chip::{AccWidth, ChipDesc, ChipError};
use proptest::prelude::*;

/// The problems `from_toml_str` reports for `text`, as "key: message" strings.
fn problems(text: &str) -> Vec<String> {
    match ChipDesc::from_toml_str(text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(ChipError::Invalid(list)) => list.iter().map(ToString::to_string).collect(),
        Err(e) => vec![e.to_string()],
    }
}

/// Asserts exactly one problem, on `key`, whose message contains `needle`.
fn check(text: &str, key: &str, needle: &str) {
    let p = problems(text);
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].starts_with(&format!("{key}: ")) && p[0].contains(needle), "{p:#?}");
}

#[test]
fn default_is_the_20_core_chip_and_validates() {
    let c = ChipDesc::default();
    assert_eq!(c.validate(), []);
    assert_eq!(c.core_count(), 20);
    assert_eq!((c.noc.width, c.noc.height), (5, 4));
    assert_eq!(c.buffer(Buf::FpIn).map(|b| b.bits), Some(18_496));
    assert_eq!(c.buffer(Buf::FpMem).map(|b| (b.bits, b.elem_bits)), Some((1 << 20, 16)));
    assert_eq!(c.buffer(Buf::Opt).map(|b| b.bits), Some(6 * 8 * 1024 * 1024));
    for b in Buf::ALL {
        assert!(c.buffer(*b).is_some(), "{b}");
    }
}

#[test]
fn empty_file_is_the_default_and_printing_round_trips() {
    let c = ChipDesc::from_toml_str("").expect("empty file");
    assert_eq!(c, ChipDesc::default());
    let text = c.to_toml_string();
    assert_eq!(ChipDesc::from_toml_str(&text), Ok(c.clone()));
    assert_eq!(text, ChipDesc::default().to_toml_string(), "deterministic");
}

#[test]
fn partial_file_overrides_only_what_it_names() {
    let c = ChipDesc::from_toml_str(
        "clock_mhz = 800\n[engines.fp.buffers.mem]\nbits = 2097152\n[numerics]\naccumulator = \"fp32\"\n",
    )
    .expect("valid override");
    let d = ChipDesc::default();
    assert_eq!(c.clock_mhz, 800);
    assert_eq!(c.buffer(Buf::FpMem).map(|b| (b.bits, b.width_bits)), Some((2_097_152, 256)));
    assert_eq!(c.numerics.accumulator, AccWidth::Fp32);
    assert_eq!((c.noc.clone(), c.dram.clone(), c.cores.clone()), (d.noc.clone(), d.dram.clone(), d.cores.clone()));
    assert_ne!(c.hash(), d.hash());
}

#[test]
fn fewer_cores_on_a_smaller_mesh() {
    let c = ChipDesc::from_toml_str("cores = [[0, 0], [1, 0]]\n[noc]\nwidth = 2\nheight = 1\n").expect("valid");
    assert_eq!(c.core_count(), 2);
    assert_eq!(c.hops(0, 1), Some(1));
}

#[test]
fn unknown_key_is_named_with_its_path() {
    check(
        "[engines.fp]\ncolumns = 16\n",
        "engines.fp.columns",
        "unknown key; remove it or use one of: buffers, cols, rows",
    );
    check("[engines.fp.buffers.membrane]\nbits = 1\n", "engines.fp.buffers.membrane", "unknown key");
}

#[test]
fn zero_cores() {
    check("cores = []\n", "cores", "the chip has no cores");
}

#[test]
fn core_outside_the_mesh() {
    check("cores = [[0, 0], [5, 0]]\n", "cores[1]", "outside the 5x4 mesh");
}

#[test]
fn two_cores_on_one_node() {
    check("cores = [[1, 1], [1, 1]]\n", "cores[1]", "like core 0");
}

#[test]
fn empty_mesh() {
    let p = problems("cores = [[0, 0]]\n[noc]\nwidth = 0\n");
    assert!(p.iter().any(|m| m.starts_with("noc.width: the mesh is 0x4")), "{p:#?}");
}

#[test]
fn buffer_too_small_for_a_tile() {
    check(
        "[engines.bp.buffers.w]\nbits = 1024\n",
        "engines.bp.buffers.w.bits",
        "less than one 256-element PE tile; use at least 4096 bits",
    );
}

#[test]
fn buffer_element_size_rules() {
    check("[engines.wg.buffers.err]\nelem_bits = 0\n", "engines.wg.buffers.err.elem_bits", "element size is 0");
    check(
        "[engines.wg.buffers.err]\nwidth_bits = 8\n",
        "engines.wg.buffers.err.width_bits",
        "positive multiple of elem_bits",
    );
    check(
        "[engines.wg.buffers.err]\nbits = 65537\n",
        "engines.wg.buffers.err.bits",
        "not a whole number of 16-bit elements",
    );
}

#[test]
fn zero_rates() {
    check("clock_mhz = 0\n", "clock_mhz", "set a positive frequency");
    check("[dram]\nbytes_per_cycle = 0\n", "dram.bytes_per_cycle", "DRAM bandwidth is 0");
    check("[noc]\nlink_bytes_per_cycle = 0\n", "noc.link_bytes_per_cycle", "at least 1 byte per cycle");
}

#[test]
fn dram_shape() {
    check("[dram]\naccess_bits = 12\n", "dram.access_bits", "not a whole number of bytes");
    check("[dram]\ncapacity_bytes = 0\n", "dram.capacity_bytes", "outside 1..=4 GiB");
}

#[test]
fn empty_pe_array() {
    check("[engines.fp]\nrows = 0\n", "engines.fp.rows", "the PE array is 0x16");
}

#[test]
fn negative_or_infinite_energy() {
    check("[energy]\nmux_pj = -1.0\n", "energy.mux_pj", "finite number >= 0");
    check("[dram]\nenergy_pj_per_access = inf\n", "dram.energy_pj_per_access", "finite number >= 0");
}

#[test]
fn fp32_storage_needs_fp32_accumulators() {
    check("[numerics]\naccumulator = \"fp16\"\nfp32_storage = true\n", "numerics.accumulator", "must be \"fp32\"");
}

#[test]
fn missing_and_foreign_buffers_in_code_built_descriptions() {
    let mut c = ChipDesc::default();
    let mem = c.engines.fp.buffers.remove("mem").expect("default has fp.mem");
    c.engines.fp.buffers.insert("extra".to_string(), mem);
    let p: Vec<String> = c.validate().iter().map(ToString::to_string).collect();
    assert_eq!(p.len(), 2, "{p:#?}");
    assert!(p[0].starts_with("engines.fp.buffers.mem: missing"), "{p:#?}");
    assert!(p[1].starts_with("engines.fp.buffers.extra: the ISA has no buffer `fp.extra`"), "{p:#?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems("clock_mhz = 0\ncores = []\n[dram]\nbytes_per_cycle = 0\n");
    assert_eq!(p.len(), 3, "{p:#?}");
}

#[test]
fn syntax_and_type_errors_are_errors() {
    assert!(matches!(ChipDesc::from_toml_str("clock_mhz = "), Err(ChipError::Syntax(_))));
    let p = problems("clock_mhz = \"fast\"\n");
    assert_eq!(p, ["clock_mhz: invalid type: string \"fast\", expected u32; give a value of the expected type"]);
}

proptest! {
    #[test]
    fn any_text_gives_a_result_not_a_panic(text in "[\\[\\]a-z_.=\"0-9 \\n-]{0,80}") {
        let _ = ChipDesc::from_toml_str(&text);
    }
}
