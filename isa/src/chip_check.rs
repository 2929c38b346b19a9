//! The rules [`ChipDesc::validate`] checks, one function per part of the description.
//!
//! Rules: at least one core and at most 65,535 (core counts and indices are 16-bit); a non-empty mesh;
//! every core placed inside the mesh and no two on the same node; non-zero clock, NoC link
//! bandwidth and DRAM bandwidth; DRAM accesses a whole number of bytes and a capacity of
//! 1 byte to 4 GiB; PE arrays of at least 1x1; every engine has exactly the buffers the ISA
//! names; every buffer has a non-zero element size that divides both its capacity and port
//! width, and holds at least one `rows x cols` tile; every energy is finite and not
//! negative; FP32 storage implies FP32 accumulators.

use crate::chip::{AccWidth, BufferDesc, ChipDesc, EngineDesc, Validation};
use crate::operand::{Buf, Stream};
use std::collections::BTreeMap;

/// Runs every rule, collecting all problems.
pub(crate) fn check(chip: &ChipDesc, v: &mut Validation) {
    check_cores(chip, v);
    check_rates(chip, v);
    for stream in [Stream::Fp, Stream::Bp, Stream::Wg] {
        if let Some(e) = chip.engine(stream) {
            check_engine(stream, e, v);
        }
    }
    check_buffer("optimizer_store", &chip.optimizer_store, 16 * 16, v);
    check_energies(chip, v);
    if chip.numerics.fp32_storage && chip.numerics.accumulator == AccWidth::Fp16 {
        v.push(
            "numerics.accumulator",
            "must be \"fp32\" when numerics.fp32_storage = true (FP32 values cannot be summed in FP16)",
        );
    }
}

fn check_cores(chip: &ChipDesc, v: &mut Validation) {
    let (w, h) = (chip.noc.width, chip.noc.height);
    if chip.cores.is_empty() {
        v.push("cores", "the chip has no cores; place at least one, e.g. cores = [[0, 0]]");
    }
    if chip.cores.len() > usize::from(u16::MAX) {
        v.push(
            "cores",
            format!("{} cores exceed what a program's 16-bit core count can name; use at most 65535", chip.cores.len()),
        );
    }
    if w == 0 || h == 0 {
        v.push("noc.width", format!("the mesh is {w}x{h}; set noc.width and noc.height to at least 1"));
    }
    let mut seen: BTreeMap<[u16; 2], usize> = BTreeMap::new();
    for (i, &[x, y]) in chip.cores.iter().enumerate() {
        if x >= w || y >= h {
            v.push(
                format!("cores[{i}]"),
                format!("core {i} at ({x}, {y}) is outside the {w}x{h} mesh; use x < {w} and y < {h}, or enlarge noc.width / noc.height"),
            );
        }
        if let Some(first) = seen.insert([x, y], i) {
            v.push(
                format!("cores[{i}]"),
                format!("core {i} is placed at ({x}, {y}) like core {first}; give each core its own mesh node"),
            );
        }
    }
}

fn check_rates(chip: &ChipDesc, v: &mut Validation) {
    if chip.clock_mhz == 0 {
        v.push("clock_mhz", "the clock is 0 MHz; set a positive frequency, e.g. clock_mhz = 500");
    }
    if chip.noc.link_bytes_per_cycle == 0 {
        v.push("noc.link_bytes_per_cycle", "a NoC link must carry at least 1 byte per cycle");
    }
    if chip.dram.bytes_per_cycle == 0 {
        v.push("dram.bytes_per_cycle", "DRAM bandwidth is 0; set at least 1 byte per cycle");
    }
    if chip.dram.access_bits == 0 || chip.dram.access_bits % 8 != 0 {
        v.push(
            "dram.access_bits",
            format!("{} bits is not a whole number of bytes; use e.g. 64", chip.dram.access_bits),
        );
    }
    if chip.dram.capacity_bytes == 0 || chip.dram.capacity_bytes > 1 << 32 {
        v.push(
            "dram.capacity_bytes",
            format!("{} bytes is outside 1..=4 GiB (DRAM addresses are 32-bit)", chip.dram.capacity_bytes),
        );
    }
}

fn check_engine(stream: Stream, e: &EngineDesc, v: &mut Validation) {
    let base = format!("engines.{stream}");
    if e.rows == 0 || e.cols == 0 {
        v.push(
            format!("{base}.rows"),
            format!("the PE array is {}x{}; set rows and cols to at least 1", e.rows, e.cols),
        );
    }
    let wanted: Vec<&str> = Buf::ALL
        .iter()
        .filter_map(|b| match b.chip_key() {
            (Some(s), key) if s == stream => Some(key),
            _ => None,
        })
        .collect();
    for key in &wanted {
        if !e.buffers.contains_key(*key) {
            v.push(
                format!("{base}.buffers.{key}"),
                format!("missing; the ISA's buffer `{stream}.{key}` needs a description"),
            );
        }
    }
    for (key, b) in &e.buffers {
        let path = format!("{base}.buffers.{key}");
        if !wanted.contains(&key.as_str()) {
            v.push(
                path.clone(),
                format!("the ISA has no buffer `{stream}.{key}`; remove it (known: {})", wanted.join(", ")),
            );
        }
        check_buffer(&path, b, u64::from(e.rows) * u64::from(e.cols), v);
    }
}

fn check_buffer(path: &str, b: &BufferDesc, tile: u64, v: &mut Validation) {
    if b.elem_bits == 0 {
        v.push(format!("{path}.elem_bits"), "element size is 0 bits; use 1, 16 or 32");
        return;
    }
    if b.bits % u64::from(b.elem_bits) != 0 {
        v.push(
            format!("{path}.bits"),
            format!("{} bits is not a whole number of {}-bit elements", b.bits, b.elem_bits),
        );
    }
    if b.width_bits == 0 || b.width_bits % b.elem_bits != 0 {
        v.push(
            format!("{path}.width_bits"),
            format!("port width {} must be a positive multiple of elem_bits ({})", b.width_bits, b.elem_bits),
        );
    }
    if b.elems() < tile {
        v.push(
            format!("{path}.bits"),
            format!(
                "{} bits hold {} elements, less than one {tile}-element PE tile; use at least {} bits",
                b.bits,
                b.elems(),
                tile * u64::from(b.elem_bits)
            ),
        );
    }
    check_energy(&format!("{path}.energy_pj"), b.energy_pj, v);
}

fn check_energy(path: &str, e: f64, v: &mut Validation) {
    if !e.is_finite() || e < 0.0 {
        v.push(path, format!("energy {e} pJ must be a finite number >= 0"));
    }
}

fn check_energies(chip: &ChipDesc, v: &mut Validation) {
    let o = &chip.energy;
    for (k, e) in [
        ("fp16_add_pj", o.fp16_add_pj),
        ("fp16_mul_pj", o.fp16_mul_pj),
        ("fp32_add_pj", o.fp32_add_pj),
        ("fp32_mul_pj", o.fp32_mul_pj),
        ("compare_pj", o.compare_pj),
        ("mux_pj", o.mux_pj),
    ] {
        check_energy(&format!("energy.{k}"), e, v);
    }
    check_energy("noc.energy_pj_per_byte_hop", chip.noc.energy_pj_per_byte_hop, v);
    check_energy("dram.energy_pj_per_access", chip.dram.energy_pj_per_access, v);
}
