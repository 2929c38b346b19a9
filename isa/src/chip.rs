//! The chip description: what the compiler maps onto and what the simulator times.
//!
//! A [`ChipDesc`] is a TOML document. [`ChipDesc::default`] is the built-in 20-core chip of
//! DESIGN.md §4, so nothing is needed to start; a user file names only what it changes:
//! [`ChipDesc::from_toml_str`] lays the file's tables over the default's (arrays such as
//! `cores` are replaced whole), rejects keys the default does not have with their full path,
//! and then runs [`ChipDesc::validate`], which reports every problem at once.
//!
//! A file that doubles the membrane store and moves to FP32 accumulation:
//!
//! ```toml
//! clock_mhz = 400
//! [engines.fp.buffers.mem]
//! bits = 2097152
//! [numerics]
//! accumulator = "fp32"
//! ```
//!
//! Buffer names are the ISA's: `engines.fp.buffers.mem` is the buffer that instructions call
//! `fp.mem` ([`Buf::FpMem`]), and `optimizer_store` is `opt`. Numbers the brief does not fix
//! (clock, DRAM bandwidth, NoC, spike/mask store energies) are estimates, documented where set.

use crate::operand::{Buf, Stream};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;
use thiserror::Error;

/// A whole chip: cores on a mesh NoC, three engines per core, DRAM, clock and energy costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipDesc {
    /// A label for reports.
    pub name: String,
    /// Clock frequency in MHz.
    pub clock_mhz: u32,
    /// Placement of each core on the mesh, `[x, y]`; core `i` is entry `i`.
    pub cores: Vec<[u16; 2]>,
    /// The network-on-chip.
    pub noc: NocDesc,
    /// The engines of every core (all cores are alike).
    pub engines: Engines,
    /// The shared optimizer store (`opt`): FP32 master weights and optimizer state.
    pub optimizer_store: BufferDesc,
    /// Off-chip memory.
    pub dram: DramDesc,
    /// Energy per arithmetic operation.
    pub energy: OpEnergy,
    /// Number formats of the engines.
    pub numerics: Numerics,
}

/// The 2-D mesh NoC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NocDesc {
    /// Mesh columns.
    pub width: u16,
    /// Mesh rows.
    pub height: u16,
    /// Bytes one link carries per cycle.
    pub link_bytes_per_cycle: u32,
    /// Cycles per router hop.
    pub hop_latency_cycles: u32,
    /// Energy to move one byte over one hop, pJ.
    pub energy_pj_per_byte_hop: f64,
}

/// The three engines of a core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Engines {
    /// Feed-forward engine.
    pub fp: EngineDesc,
    /// Back-propagation engine.
    pub bp: EngineDesc,
    /// Weight-gradient engine.
    pub wg: EngineDesc,
}

/// One engine: its PE array and its buffers by ISA name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineDesc {
    /// PE array rows.
    pub rows: u16,
    /// PE array columns.
    pub cols: u16,
    /// Buffers, keyed by the part of the ISA name after the engine (`mem` for `fp.mem`).
    pub buffers: BTreeMap<String, BufferDesc>,
}

/// One SRAM buffer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferDesc {
    /// Capacity in bits.
    pub bits: u64,
    /// Bits read or written per access (the port width).
    pub width_bits: u32,
    /// Bits per element (1 for spikes and masks, 16 for FP16, 32 for FP32).
    pub elem_bits: u32,
    /// Energy of one access of `width_bits`, pJ.
    pub energy_pj: f64,
}

impl BufferDesc {
    fn new(bits: u64, width_bits: u32, elem_bits: u32, energy_pj: f64) -> BufferDesc {
        BufferDesc { bits, width_bits, elem_bits, energy_pj }
    }

    /// Capacity in elements.
    pub fn elems(&self) -> u64 {
        self.bits / u64::from(self.elem_bits.max(1))
    }
}

/// Off-chip DRAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DramDesc {
    /// Sustained bandwidth, bytes per cycle.
    pub bytes_per_cycle: u32,
    /// Latency of a transfer, cycles.
    pub latency_cycles: u32,
    /// Bits per access.
    pub access_bits: u32,
    /// Energy per access, pJ.
    pub energy_pj_per_access: f64,
    /// Capacity in bytes (addresses are 32-bit, so at most 4 GiB).
    pub capacity_bytes: u64,
}

/// Energy per arithmetic operation, pJ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpEnergy {
    /// FP16 add.
    pub fp16_add_pj: f64,
    /// FP16 multiply.
    pub fp16_mul_pj: f64,
    /// FP32 add (accumulators, optimizer).
    pub fp32_add_pj: f64,
    /// FP32 multiply (optimizer).
    pub fp32_mul_pj: f64,
    /// Compare (threshold, zero test).
    pub compare_pj: f64,
    /// 2:1 mux (spike gating).
    pub mux_pj: f64,
}

/// Width of engine accumulators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccWidth {
    /// Accumulate in binary16.
    Fp16,
    /// Accumulate in binary32, round to binary16 on store.
    Fp32,
}

/// Number formats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Numerics {
    /// Accumulator width of the engines.
    pub accumulator: AccWidth,
    /// Keep every stored value in FP32 instead of FP16 (a reference mode for studies).
    pub fp32_storage: bool,
}

fn buffers(list: &[(&str, BufferDesc)]) -> BTreeMap<String, BufferDesc> {
    list.iter().map(|(k, b)| ((*k).to_string(), b.clone())).collect()
}

fn engine(list: &[(&str, BufferDesc)]) -> EngineDesc {
    EngineDesc { rows: 16, cols: 16, buffers: buffers(list) }
}

impl Default for ChipDesc {
    /// The built-in chip: 20 cores on a 5x4 mesh, buffers sized like NeuroMC.
    fn default() -> ChipDesc {
        let b = BufferDesc::new;
        // The spike (256 Kib) and mask (64 Kib) stores and the gradient / optimizer stores
        // have no published energy; they are scaled from the 1 Mib, 256-bit figure.
        let fp = engine(&[
            ("in", b(18_496, 1, 1, 0.45)),
            ("w", b(18_432, 16, 16, 5.3)),
            ("psum", b(65_536, 16, 16, 5.8)),
            ("mem", b(1 << 20, 256, 16, 92.7)),
            ("spk", b(256 << 10, 256, 1, 46.0)),
            ("mask", b(64 << 10, 64, 1, 11.5)),
        ]);
        let bp = engine(&[
            ("err", b(65_536, 16, 16, 5.8)),
            ("w", b(18_432, 16, 16, 5.3)),
            ("psum", b(65_536, 16, 16, 5.8)),
            ("delta", b(1 << 20, 256, 16, 92.7)),
            ("vgrad", b(65_536, 16, 16, 5.8)),
        ]);
        let wg = engine(&[
            ("spk", b(18_496, 1, 1, 0.45)),
            ("err", b(65_536, 16, 16, 5.8)),
            ("grad", b(131_072, 32, 32, 11.0)),
        ]);
        ChipDesc {
            name: "snnc-default-20".to_string(),
            clock_mhz: 500,
            cores: (0..20u16).map(|i| [i % 5, i / 5]).collect(),
            // 64-bit links, 2-cycle routers, ~1 pJ per byte-hop at 28-32 nm.
            noc: NocDesc {
                width: 5,
                height: 4,
                link_bytes_per_cycle: 8,
                hop_latency_cycles: 2,
                energy_pj_per_byte_hop: 1.0,
            },
            engines: Engines { fp, bp, wg },
            optimizer_store: b(6 << 23, 256, 32, 150.0),
            // 16 B/cycle at 500 MHz is 8 GB/s, one LPDDR4 channel.
            dram: DramDesc {
                bytes_per_cycle: 16,
                latency_cycles: 100,
                access_bits: 64,
                energy_pj_per_access: 1300.0,
                // 4 GiB, the most 32-bit addresses reach: the training state of VGG-16 (FP16 and
                // FP32 weights, momentum, about 1.4 GB) fits.
                capacity_bytes: 1 << 32,
            },
            energy: OpEnergy {
                fp16_add_pj: 0.548,
                fp16_mul_pj: 0.812,
                fp32_add_pj: 0.9,
                fp32_mul_pj: 3.7,
                compare_pj: 0.056,
                mux_pj: 0.034,
            },
            // FP32 accumulators in reductions, rounded once to FP16: the convention of the golden
            // data, and what keeps small weight gradients from flushing to zero.
            numerics: Numerics { accumulator: AccWidth::Fp32, fp32_storage: false },
        }
    }
}

/// One problem found in a chip description: the key it concerns and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipProblem {
    /// Dotted key path, e.g. `engines.fp.buffers.mem.bits`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for ChipProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a chip description could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChipError {
    /// The text is not TOML.
    #[error("chip description is not valid TOML: {0}")]
    Syntax(String),
    /// The description is TOML but wrong; every problem is listed.
    #[error("invalid chip description:\n{}", list(.0))]
    Invalid(Vec<ChipProblem>),
}

fn list(problems: &[ChipProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

impl ChipDesc {
    /// Parses a (possibly partial) description: keys it names override the default's.
    pub fn from_toml_str(text: &str) -> Result<ChipDesc, ChipError> {
        let over: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ChipError::Syntax(e.to_string().trim_end().to_string()))?;
        let mut base = ChipDesc::default().to_table()?;
        let mut problems = Vec::new();
        merge(&mut base, over, "", &mut problems);
        if !problems.is_empty() {
            return Err(ChipError::Invalid(problems));
        }
        let chip: ChipDesc = toml::Value::Table(base)
            .try_into()
            .map_err(|e: toml::de::Error| ChipError::Invalid(vec![type_problem(&e.to_string())]))?;
        let problems = chip.validate();
        if problems.is_empty() { Ok(chip) } else { Err(ChipError::Invalid(problems)) }
    }

    fn to_table(&self) -> Result<toml::Table, ChipError> {
        toml::Table::try_from(self).map_err(|e| ChipError::Syntax(e.to_string()))
    }

    /// The effective description as TOML, in a fixed key order.
    pub fn to_toml_string(&self) -> String {
        // Serialising plain structs, maps and numbers cannot fail except for non-finite
        // floats, which `validate` rejects; fall back to Debug so this never panics.
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot print as TOML: {e}\n# {self:?}\n"))
    }

    /// A fingerprint of the effective description: the first 8 bytes (little-endian) of the
    /// SHA-256 of [`to_toml_string`](Self::to_toml_string). Programs record it.
    pub fn hash(&self) -> u64 {
        let digest = Sha256::digest(self.to_toml_string().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first)
    }

    /// Number of cores.
    pub fn core_count(&self) -> usize {
        self.cores.len()
    }

    /// The description of an ISA buffer, if the chip has it.
    pub fn buffer(&self, buf: Buf) -> Option<&BufferDesc> {
        match buf.chip_key() {
            (None, _) => Some(&self.optimizer_store),
            (Some(s), key) => self.engine(s)?.buffers.get(key),
        }
    }

    /// The engine description of a stream (`None` for the data mover).
    pub fn engine(&self, stream: Stream) -> Option<&EngineDesc> {
        match stream {
            Stream::Fp => Some(&self.engines.fp),
            Stream::Bp => Some(&self.engines.bp),
            Stream::Wg => Some(&self.engines.wg),
            Stream::Dma => None,
        }
    }

    /// Mesh hops between two cores (Manhattan distance), if both exist.
    pub fn hops(&self, a: usize, b: usize) -> Option<u32> {
        let (pa, pb) = (self.cores.get(a)?, self.cores.get(b)?);
        Some(u32::from(pa[0].abs_diff(pb[0])) + u32::from(pa[1].abs_diff(pb[1])))
    }

    /// Every problem with this description; empty when it is usable.
    pub fn validate(&self) -> Vec<ChipProblem> {
        let mut v = Validation::default();
        crate::chip_check::check(self, &mut v);
        v.problems
    }
}

/// Collects problems during validation.
#[derive(Default)]
pub(crate) struct Validation {
    pub(crate) problems: Vec<ChipProblem>,
}

impl Validation {
    /// Records a problem with `key`.
    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ChipProblem { key: key.into(), message: message.into() });
    }
}

/// Lays `over` onto `base`; keys absent from `base` are unknown and reported with their path.
fn merge(base: &mut toml::Table, over: toml::Table, path: &str, problems: &mut Vec<ChipProblem>) {
    for (key, value) in over {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        match (base.get_mut(&key), value) {
            (None, _) => {
                let known: Vec<&str> = base.keys().map(String::as_str).collect();
                let message = format!("unknown key; remove it or use one of: {}", known.join(", "));
                problems.push(ChipProblem { key: full, message });
            }
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o, &full, problems),
            (Some(slot), value) => *slot = value,
        }
    }
}

/// Turns a deserialisation message ("invalid type: ..., expected u32\nin `clock_mhz`") into
/// a problem keyed by the path it names.
fn type_problem(text: &str) -> ChipProblem {
    let text = text.trim_end();
    let (what, key) = match text.rsplit_once("\nin `") {
        Some((what, key)) => (what, key.trim_end_matches('`')),
        None => (text, "(value)"),
    };
    ChipProblem { key: key.to_string(), message: format!("{what}; give a value of the expected type") }
}
