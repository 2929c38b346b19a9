//! Operand types: what an instruction's fields can hold, and how each is encoded, decoded,
//! printed and parsed.
//!
//! Every field type of the instruction table implements the crate-private [`Operand`] trait,
//! so the encoder, decoder, printer and assembler generated from the table need no per-op
//! code: they call the field type's methods in table order. The binary form of each type is
//! fixed and little-endian; the text form never contains whitespace, so one operand is one
//! `name=value` token in a listing.

use crate::error::{DecodeError, DecodeErrorKind, Reader};
use std::fmt::Write as _;

pub use crate::address::{Access, DramAddr, Term};

/// How many loop counter registers a stream has (`r0` .. `r7`), which is also the deepest
/// loop nesting and the most index terms an address can carry. Eight leave code generation
/// a register for the tile a core works on besides step, sample, timestep and chunk, so a
/// layer's tiles are a loop rather than unrolled code.
pub const NUM_LOOP_REGS: usize = 8;
/// How many signal/wait token counters each stream has.
pub const NUM_TOKENS: u8 = 16;
/// How many neuron / optimizer configuration slots a core has.
pub const NUM_CFG_SLOTS: u8 = 8;
/// How many NoC channels connect one core to another.
pub const NUM_CHANNELS: u8 = 16;

/// The interface every field type of the instruction table implements.
pub(crate) trait Operand: Sized {
    /// A short name of the type for the ISA reference.
    const KIND: &'static str;
    /// Whether the operand may be absent (`Option`).
    const OPTIONAL: bool = false;
    /// Appends the binary form.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads the binary form.
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    /// Appends the text form (no whitespace).
    fn print(&self, out: &mut String);
    /// Parses the text form; the error says what was expected.
    fn parse(s: &str) -> Result<Self, String>;
    /// Calls `f` on every buffer access this operand holds.
    fn accesses<'a>(&'a self, _f: &mut dyn FnMut(&'a Access)) {}
}

/// Parses an unsigned number in decimal or `0x` hexadecimal.
pub(crate) fn parse_u64(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() => u64::from_str_radix(hex, 16).ok(),
        Some(_) => None,
        None if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => s.parse().ok(),
        None => None,
    }
}

macro_rules! int_operand {
    ($t:ty, $kind:literal, $read:ident) => {
        impl Operand for $t {
            const KIND: &'static str = $kind;
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read($kind)
            }
            fn print(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
            fn parse(s: &str) -> Result<Self, String> {
                parse_u64(s)
                    .and_then(|v| <$t>::try_from(v).ok())
                    .ok_or_else(|| format!("expected {} (0..={}), found `{s}`", $kind, <$t>::MAX))
            }
        }
    };
}

int_operand!(u8, "u8", u8);
int_operand!(u16, "u16", u16);
int_operand!(u32, "u32", u32);

impl Operand for f32 {
    const KIND: &'static str = "f32";
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bits().to_le_bytes());
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        let bits = r.u32("f32")?;
        let v = f32::from_bits(bits);
        if v.is_nan() {
            return Err(DecodeError::new(
                at,
                DecodeErrorKind::BadOperand { expected: "a non-NaN f32 constant", found: u64::from(bits) },
            ));
        }
        Ok(v)
    }
    fn print(&self, out: &mut String) {
        // `Display` for f32 prints the shortest text that parses back to the same bits
        // (including `-0` and `inf`), which is what makes listings reassemble exactly.
        let _ = write!(out, "{self}");
    }
    fn parse(s: &str) -> Result<Self, String> {
        match s.parse::<f32>() {
            Ok(v) if !v.is_nan() => Ok(v),
            _ => Err(format!("expected a number (f32, not NaN), found `{s}`")),
        }
    }
}

impl Operand for bool {
    const KIND: &'static str = "bool";
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8("bool")? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::new(
                at,
                DecodeErrorKind::BadOperand { expected: "a bool (0 or 1)", found: u64::from(v) },
            )),
        }
    }
    fn print(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn parse(s: &str) -> Result<Self, String> {
        match s {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("expected `true` or `false`, found `{s}`")),
        }
    }
}

impl<T: Operand> Operand for Option<T> {
    const KIND: &'static str = T::KIND;
    const OPTIONAL: bool = true;
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let at = r.offset();
        match r.u8("an option tag")? {
            0 => Ok(None),
            1 => T::decode(r).map(Some),
            v => Err(DecodeError::new(
                at,
                DecodeErrorKind::BadOperand {
                    expected: "an option tag (0 = absent, 1 = present)",
                    found: u64::from(v),
                },
            )),
        }
    }
    fn print(&self, out: &mut String) {
        match self {
            None => out.push('-'),
            Some(v) => v.print(out),
        }
    }
    fn parse(s: &str) -> Result<Self, String> {
        if s == "-" { Ok(None) } else { T::parse(s).map(Some) }
    }
    fn accesses<'a>(&'a self, f: &mut dyn FnMut(&'a Access)) {
        if let Some(v) = self {
            v.accesses(f);
        }
    }
}

/// Declares a small operand enum with its text names; the binary form is the index.
macro_rules! operand_enum {
    ($(#[doc = $doc:literal])* $name:ident, $kind:literal {
        $($(#[doc = $vdoc:literal])* $var:ident = $text:literal),* $(,)?
    }) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[doc = $vdoc])* $var),* }

        impl $name {
            /// Every value, in encoding order.
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            /// The text name used in listings.
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $text),* }
            }
            /// The value with the given text name.
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$var),)* _ => None }
            }
            /// The value with the given index.
            pub fn from_index(i: usize) -> Option<$name> {
                Self::ALL.get(i).copied()
            }
            /// This value's index (its binary encoding).
            pub fn index(self) -> usize {
                self as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl Operand for $name {
            const KIND: &'static str = $kind;
            fn encode(&self, out: &mut Vec<u8>) {
                out.push(*self as u8);
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                let at = r.offset();
                let v = r.u8($kind)?;
                $name::from_index(usize::from(v)).ok_or_else(|| {
                    DecodeError::new(at, DecodeErrorKind::BadOperand {
                        expected: concat!("a ", $kind, " (one of:", $(" ", $text),*, ")"),
                        found: u64::from(v),
                    })
                })
            }
            fn print(&self, out: &mut String) {
                out.push_str(self.name());
            }
            fn parse(s: &str) -> Result<Self, String> {
                $name::from_name(s).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|v| v.name()).collect();
                    format!("expected a {} (one of {}), found `{s}`", $kind, names.join(", "))
                })
            }
        }
    };
}

operand_enum!(
    /// A loop counter register. Loop `n` counts `0..n`; addresses add `reg * stride`.
    Reg, "loop register" { /// Register 0.
    R0 = "r0", /// Register 1.
    R1 = "r1", /// Register 2.
    R2 = "r2", /// Register 3.
    R3 = "r3", /// Register 4.
    R4 = "r4", /// Register 5.
    R5 = "r5", /// Register 6.
    R6 = "r6", /// Register 7.
    R7 = "r7" }
);

operand_enum!(
    /// One of a core's four instruction streams: the three engines and the data mover.
    Stream, "stream" {
    /// Feed-forward engine.
    Fp = "fp",
    /// Back-propagation engine.
    Bp = "bp",
    /// Weight-gradient engine.
    Wg = "wg",
    /// Data mover (DRAM and NoC transfers).
    Dma = "dma" }
);

operand_enum!(
    /// A named on-chip buffer. `engine.name` buffers are per core; `opt` is the shared
    /// optimizer store. Sizes come from the chip description.
    Buf, "buffer" {
    /// FP input spikes (1 bit), stored padded.
    FpIn = "fp.in",
    /// FP weights (FP16).
    FpW = "fp.w",
    /// FP partial sums (FP16).
    FpPsum = "fp.psum",
    /// Membrane store: V and H per timestep (FP16).
    FpMem = "fp.mem",
    /// Spike store: output spikes per timestep (1 bit).
    FpSpk = "fp.spk",
    /// Surrogate mask store (1 bit).
    FpMask = "fp.mask",
    /// BP input errors (FP16).
    BpErr = "bp.err",
    /// BP transposed weights (FP16).
    BpW = "bp.w",
    /// BP partial sums (FP16).
    BpPsum = "bp.psum",
    /// BP error store: dL/dH per timestep (FP16).
    BpDelta = "bp.delta",
    /// BP membrane-gradient state dL/dV carried across reverse time (FP16).
    BpVgrad = "bp.vgrad",
    /// WG input spikes (1 bit).
    WgSpk = "wg.spk",
    /// WG errors (FP16).
    WgErr = "wg.err",
    /// WG gradient accumulators (FP32).
    WgGrad = "wg.grad",
    /// Shared optimizer store: FP32 master weights and optimizer state.
    Opt = "opt" }
);

impl Buf {
    /// The engine whose description holds this buffer (`None` for the shared `opt` store),
    /// and the buffer's key inside that engine's `buffers` table.
    pub fn chip_key(self) -> (Option<Stream>, &'static str) {
        let name = self.name();
        match name.split_once('.') {
            Some((eng, key)) => (Stream::from_name(eng), key),
            None => (None, name),
        }
    }
}

operand_enum!(
    /// What the soma does to the membrane after a spike.
    ResetMode, "reset mode" {
    /// V = H * (1 - S).
    Hard = "hard",
    /// V = H - theta * S.
    Soft = "soft" }
);

operand_enum!(
    /// The surrogate derivative used in backward.
    Surrogate, "surrogate" {
    /// 1/width inside |x| < width/2: a 1-bit mask, sparse.
    Rect = "rect",
    /// Arctangent with sharpness alpha.
    Atan = "atan",
    /// Sigmoid with sharpness alpha.
    Sigmoid = "sigmoid",
    /// Triangle with parameter alpha.
    Triangle = "triangle",
    /// Fast sigmoid with slope.
    FastSigmoid = "fast_sigmoid" }
);

operand_enum!(
    /// Pooling kind.
    PoolKind, "pool kind" {
    /// Average pooling.
    Avg = "avg",
    /// Max pooling (OR on spikes).
    Max = "max" }
);

operand_enum!(
    /// Loss function whose gradient `bp.loss` computes.
    LossKind, "loss kind" {
    /// MSE between spike rate and one-hot target.
    MseRate = "mse_rate",
    /// Cross-entropy on spike rate.
    CeRate = "ce_rate",
    /// Cross-entropy on mean membrane of a non-spiking readout.
    CeMem = "ce_mem" }
);

operand_enum!(
    /// Optimizer kind.
    OptKind, "optimizer" {
    /// SGD, with momentum if the momentum parameter is non-zero.
    Sgd = "sgd",
    /// Adam.
    Adam = "adam" }
);
