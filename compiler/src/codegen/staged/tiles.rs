//! Tile sizes of a staged program: how a conv or linear layer is cut so that every piece of
//! its working set fits the buffer it lives in. Pure arithmetic, tested on its own.

use crate::codegen::emit::h16;
use crate::codegen::pooling::Pooling;
use isa::PoolKind;

/// The largest divisor of `n` that is at most `cap` and satisfies `ok`, if any.
pub(super) fn divisor(n: u32, cap: u64, ok: impl Fn(u32) -> bool) -> Option<u32> {
    (1..=n).rev().find(|&d| n % d == 0 && u64::from(d) <= cap && ok(d))
}

/// Buffer capacities (elements) the tiling works against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caps {
    /// `fp.psum`, `fp.w`, `fp.in` (bits), `fp.spk` (bits), `fp.mem`.
    pub(super) psum: u64,
    pub(super) fpw: u64,
    pub(super) fpin: u64,
    pub(super) spk: u64,
    pub(super) mem: u64,
    /// `bp.w`, `bp.psum`, `bp.delta`, `wg.err`.
    pub(super) bpw: u64,
    pub(super) bpsum: u64,
    pub(super) delta: u64,
    pub(super) wgerr: u64,
    /// One core's share of `opt`.
    pub(super) opt: u64,
    /// Cores the tiles spread over.
    pub(super) cores: u64,
    /// Products a `bp.conv` makes per cycle, and DRAM bytes the chip moves per cycle, for
    /// the rough clock of a pass's chunks ([`igrad_cycles`]).
    pub(super) bp_macs: u64,
    pub(super) dram_bytes_per_cycle: u64,
    /// Cycles from a `dma.ld` to its first byte, which the loading stream waits out.
    pub(super) dram_latency: u64,
}

/// Convolution geometry: input `cin x h x w`, output `cout x oh x ow`, kernel `k`, stride `s`,
/// padding `p`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConvGeom {
    pub(super) cin: u32,
    pub(super) h: u32,
    pub(super) w: u32,
    pub(super) cout: u32,
    pub(super) oh: u32,
    pub(super) ow: u32,
    pub(super) k: u32,
    pub(super) s: u32,
    pub(super) p: u32,
}

impl ConvGeom {
    pub(super) fn hp(&self) -> u32 {
        self.h + 2 * self.p
    }
    pub(super) fn wp(&self) -> u32 {
        self.w + 2 * self.p
    }
    /// Weights of one output channel over one input channel.
    pub(super) fn kk(&self) -> u32 {
        self.k * self.k
    }
    /// Input elements per timestep.
    pub(super) fn inputs(&self) -> u32 {
        self.cin * self.h * self.w
    }
    /// Output elements per timestep.
    pub(super) fn outputs(&self) -> u32 {
        self.cout * self.oh * self.ow
    }

    /// Padded input rows an output row block reads: block `rb` of `rows` output rows reads
    /// `len` rows from padded row `first`; returns `(first, len)`.
    pub(super) fn in_window(&self, rows: u32, rb: u32) -> (u32, u32) {
        (rb * rows * self.s, (rows - 1) * self.s + self.k)
    }

    /// Elements of a region holding `cc` padded input windows of `wh` rows, with `p` spare
    /// rows before and after, so that `pad` may address the border rows of the first and
    /// last window (which it never writes).
    pub(super) fn window_len(&self, cc: u32, wh: u32) -> u64 {
        u64::from(self.wp()) * (u64::from(cc) * u64::from(wh) + 2 * u64::from(self.p))
    }

    /// The input-gradient window of block `blk` of `rows` dense input rows: the error rows
    /// that reach it and the padded rows `bp.conv` writes from them.
    pub(super) fn err_window(&self, rows: u32, blk: u32) -> ErrWindow {
        let a = blk * rows + self.p;
        let b = a + rows;
        // Output row r reads padded rows [r*s, r*s + k).
        let r0 = (a + 1).saturating_sub(self.k).div_ceil(self.s.max(1));
        let r1 = ((b - 1) / self.s.max(1) + 1).min(self.oh);
        let start = r0 * self.s;
        // The window reaches the block's last row even where no error row does (a stride
        // that skips the bottom rows); the extra rows keep `bp.conv`'s output height.
        let ih = b.max(r1.saturating_sub(1) * self.s + self.k).saturating_sub(start);
        ErrWindow { r0, r1, start, ih, a }
    }
    /// The shape operands of `fp.conv`, `bp.conv` and `wg.conv` for `cin` input and `cout`
    /// output channels over `ih` padded input rows: `(cin, cout, ih, iw, kh, kw, stride)`.
    pub(super) fn operands(&self, cin: u32, cout: u32, ih: u32) -> (u16, u16, u16, u16, u8, u8, u8) {
        let byte = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
        (h16(cin), h16(cout), h16(ih), h16(self.wp()), byte(self.k), byte(self.k), byte(self.s))
    }
}

/// The padded input-gradient rows one block of dense input rows needs: error rows
/// `[r0, r1)` write padded rows `[start, start + ih)`, which hold the block's rows from
/// padded row `a` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ErrWindow {
    pub(super) r0: u32,
    pub(super) r1: u32,
    pub(super) start: u32,
    pub(super) ih: u32,
    pub(super) a: u32,
}

/// How a conv layer is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConvTiling {
    /// Output channels and rows per tile (a tile is `co x rows x ow`; row blocks, `rows <
    /// oh`, read windows of the input rows).
    pub(super) co: u32,
    pub(super) rows: u32,
    /// Input channels per streamed chunk.
    pub(super) cc: u32,
    /// Whether a tile's weights for all chunks fit `fp.w` at once.
    pub(super) resident: bool,
    /// Input channels per chunk of the input-gradient pass, and output channels per block.
    pub(super) cc2: u32,
    pub(super) cob: u32,
    /// Dense input rows per block of the input-gradient pass (`h`: whole maps).
    pub(super) rows2: u32,
}

impl ConvTiling {
    pub(super) fn tile(&self, g: &ConvGeom) -> u32 {
        self.co * self.rows * g.ow
    }

    /// Whether tiles are row blocks, which load windows of the input rows.
    pub(super) fn windowed(&self, g: &ConvGeom) -> bool {
        self.rows < g.oh
    }
}

/// The tiling of a conv layer, or why none fits. `dense`: the input is FP16 (a pooled map),
/// not spikes; `pool`: the window of the pooling that follows, if any, and whether its
/// output is spikes (max pooling), which are stored in whole bytes; `errors`: whether the
/// layer computes the errors of a layer below it (all but the first).
pub(super) fn conv(
    g: &ConvGeom,
    dense: bool,
    pool: Option<(u32, bool)>,
    errors: bool,
    caps: &Caps,
) -> Result<ConvTiling, String> {
    let bits_ok = |elems: u32| dense || elems % 8 == 0;
    let plane = u64::from(g.hp() * g.wp());
    // Padded chunk: fp.in for spikes; for dense input fp.mem also holds V, H and the stage.
    let in_cap = if dense { caps.mem / 4 } else { caps.fpin };
    let chunk_ok = |cc: u32| u64::from(cc) * plane <= in_cap && bits_ok(cc * g.h * g.w);
    let pool_ok = |co: u32, rows: u32| {
        pool.is_none_or(|(k, bits)| rows % k == 0 && (!bits || (co * (rows / k) * (g.ow / k)) % 8 == 0))
    };
    let kk = u64::from(g.kk());
    // Whole maps first: the output channels and input chunk that read the least from DRAM
    // per timestep (every tile reads the whole input, and the weights too unless they stay
    // resident); ties: the larger chunk, which rounds the partial sums less often.
    let whole = g.oh * g.ow;
    let in_bytes = u64::from(g.inputs()) * if dense { 16 } else { 1 } / 8;
    let pairs = (1..=g.cout).filter(|co| g.cout % co == 0).filter_map(|co| {
        // Output spikes are stored in whole bytes.
        let ok = u64::from(co * whole) <= caps.psum && (co * whole) % 8 == 0 && pool_ok(co, g.oh);
        let cap = caps.fpw / (u64::from(co) * kk);
        // A block's gradients too large for `wg.grad` live in the core's share of `opt`,
        // beside a chunk of masters and (at most two words of) state.
        let grads = u64::from(co) * (u64::from(g.cin) * kk + 1);
        let opt_ok = |cc: u32| grads <= caps.wgerr || grads + 3 * u64::from(co * cc) * kk <= caps.opt;
        let cc = if ok { divisor(g.cin, cap, |cc| chunk_ok(cc) && opt_ok(cc)) } else { None };
        cc.map(|cc| (co, cc))
    });
    let cost = |&(co, cc): &(u32, u32)| {
        let weights = u64::from(co) * u64::from(g.cin) * kk;
        let streamed = if weights <= caps.fpw { 0 } else { weights * 2 };
        (u64::from(g.cout / co) * (in_bytes + streamed), u32::MAX - cc)
    };
    let best = pairs.min_by_key(cost);
    let (co, rows, cc) = match best {
        Some((co, cc)) => (co, g.oh, cc),
        None => row_blocks(g, dense, &pool_ok, caps)?,
    };
    let resident = u64::from(co) * u64::from(g.cin) * kk <= caps.fpw;
    let (cc2, cob, rows2) = if errors { conv_igrad(g, caps)? } else { (0, 0, g.h) };
    Ok(ConvTiling { co, rows, cc, resident, cc2, cob, rows2 })
}

/// Row blocks of `co` output channels, for maps too large for whole ones: each tile reads
/// a window of its input rows (with the halo the kernel needs) in chunks of channels. The
/// tile and chunk that read the least from DRAM on the busiest core win (every tile reads
/// its window of all input channels, and halos are read twice); ties: the larger chunk,
/// which rounds the partial sums less often. Returns `(co, rows, cc)` with `rows < oh`.
fn row_blocks(
    g: &ConvGeom,
    dense: bool,
    pool_ok: &dyn Fn(u32, u32) -> bool,
    caps: &Caps,
) -> Result<(u32, u32, u32), String> {
    // Windows of spikes start and end on whole bytes when rows are.
    if !dense && g.w % 8 != 0 {
        return Err("row windows of a spike map whose rows are not whole bytes".into());
    }
    let in_cap = if dense { caps.mem / 4 } else { caps.fpin };
    let (kk, bytes) = (u64::from(g.kk()), if dense { 2 } else { 1 });
    let fits = |(co, r): (u32, u32)| {
        let tile = u64::from(co) * u64::from(r * g.ow);
        // A tile of several channels is stored channel by channel: each part of every map
        // (spikes, pooled spikes) must be whole bytes.
        let parts_ok = co == 1 || ((r * g.ow) % 8 == 0 && (g.oh * g.ow) % 8 == 0 && pool_ok(1, r) && pool_ok(1, g.oh));
        let ok = tile <= caps.psum && tile % 8 == 0 && pool_ok(co, r) && parts_ok;
        let wh = g.in_window(r, 0).1;
        let weights = u64::from(co) * u64::from(g.cin) * kk;
        let grads = weights + u64::from(co);
        let opt_ok = |cc: u32| grads <= caps.wgerr || grads + 3 * u64::from(co * cc) * kk <= caps.opt;
        let cap = caps.fpw / (u64::from(co) * kk);
        let cc = divisor(g.cin, cap, |cc| g.window_len(cc, wh) <= in_cap && opt_ok(cc));
        let streamed = if weights <= caps.fpw { 0 } else { weights * 2 };
        let window = u64::from(g.cin) * u64::from(wh) * u64::from(g.w) * bytes / 8;
        // WG owns whole channel blocks, so the busiest core reads the windows of its share
        // of the blocks; then the total, then the larger chunk.
        let per_block = u64::from(g.oh / r) * (window + streamed);
        let busiest = u64::from(g.cout / co).div_ceil(caps.cores.max(1)) * per_block;
        let cost = u64::from(g.cout / co) * per_block;
        cc.filter(|_| ok).map(|cc| (busiest, cost, u32::MAX - cc, co, r, cc))
    };
    let divisors = |n: u32| (1..=n).filter(move |d| n % d == 0);
    let pairs = divisors(g.cout).flat_map(|co| divisors(g.oh).filter(|&r| r < g.oh).map(move |r| (co, r)));
    let best = pairs.filter_map(fits).min();
    best.map(|(_, _, _, co, r, cc)| (co, r, cc))
        .ok_or_else(|| "no block of output rows and window of input rows fit `fp.psum` and `fp.in`".to_string())
}

/// Chunks of the input-gradient pass: `cc2` input channels (padded and dense gradient in
/// `bp.delta`) against blocks of `cob` output channels' dL/dH (also in `bp.delta`) and
/// weights (`bp.w`), over whole maps or, when they do not fit, blocks of `rows2` input rows.
fn conv_igrad(g: &ConvGeom, caps: &Caps) -> Result<(u32, u32, u32), String> {
    conv_igrad_whole(g, caps)
        .map(|(cc2, cob)| (cc2, cob, g.h))
        .or_else(|| conv_igrad_rows(g, caps))
        .ok_or_else(|| "no chunk of the error map and block of output channels fit `bp.delta` and `bp.w`".to_string())
}

/// The input-gradient chunks over whole maps, if they fit. The chunks are the pass's only
/// parallelism, dealt round robin over the cores, but each reads the errors of every
/// output channel: of the chunks that fit, the one whose pass ends first by
/// [`igrad_cycles`] wins, the larger of equals. (The largest chunk that fits, which this
/// replaced, left three quarters of vgg_cifar_small's cores idle in its longest pass.)
fn conv_igrad_whole(g: &ConvGeom, caps: &Caps) -> Option<(u32, u32)> {
    let plane = u64::from(g.hp() * g.wp());
    let kk = u64::from(g.kk());
    let whole = g.oh * g.ow;
    // The largest input chunk for which some block of output channels still fits: its
    // padded and dense gradient and a block of dL/dH all live in `bp.delta`.
    let fits = |cc2: u32| {
        let grads = u64::from(cc2) * (plane + u64::from(g.h * g.w));
        let room = caps.delta.saturating_sub(grads);
        let cob = divisor(g.cout, room / u64::from(whole.max(1)), |c| {
            (c * whole) % 8 == 0 && u64::from(c) * u64::from(cc2) * kk <= caps.bpw
        });
        cob.filter(|_| grads <= caps.delta).map(|cob| (cc2, cob))
    };
    let fitting = (1..=g.cin).rev().filter(|c| g.cin % c == 0).filter_map(fits);
    fitting.min_by_key(|&(cc2, cob)| (igrad_cycles(g, caps, (cc2, cob)), std::cmp::Reverse(cc2)))
}

/// A rough clock of the input-gradient pass in chunks of `cc2` input channels against
/// blocks of `cob` output channels, per sample-step: the rounds of chunks on the busiest
/// core, each all its products at the rate of a `bp.conv` and, for every block, the DRAM
/// latency of its three loads (errors, their bitmap and weights), which the BP stream
/// waits out; or all chunks' reads of the errors and weights through DRAM at half the
/// chip's bandwidth (the other streams of every core load and store at the same time),
/// whichever is longer.
fn igrad_cycles(g: &ConvGeom, caps: &Caps, (cc2, cob): (u32, u32)) -> u64 {
    let (chunks, cout, kk) = (u64::from(g.cin / cc2.max(1)), u64::from(g.cout), u64::from(g.kk()));
    let outputs = u64::from(g.oh * g.ow);
    let products = u64::from(cc2) * cout * outputs * kk;
    let waits = cout.div_ceil(u64::from(cob.max(1))) * 3 * caps.dram_latency;
    let compute = chunks.div_ceil(caps.cores.max(1)) * (products.div_ceil(caps.bp_macs.max(1)) + waits);
    let bytes = chunks * (cout * outputs * 17 / 8 + u64::from(cc2) * cout * kk * 2);
    compute.max(2 * bytes.div_ceil(caps.dram_bytes_per_cycle.max(1)))
}

/// The input-gradient chunks over blocks of input rows, each computed from the error rows
/// that reach it. The largest block of output channels wins (each block is one more FP16
/// sum of the gradient, so with all of them a window sums exactly as a whole map does),
/// then the chunk and block of rows that read the least from DRAM (every chunk reads the
/// error rows of all output channels, halos twice), then the larger of them.
fn conv_igrad_rows(g: &ConvGeom, caps: &Caps) -> Option<(u32, u32, u32)> {
    // Nonzero bitmaps of error rows are loaded in whole bytes; a stride beyond the kernel
    // would leave rows that no error reaches before a window.
    if g.ow % 8 != 0 || g.s > g.k {
        return None;
    }
    let kk = u64::from(g.kk());
    let r8 = |n: u64| n.div_ceil(8) * 8;
    let blocks = |rows: u32| (0..g.h / rows).map(move |b| g.err_window(rows, b));
    // `(DRAM bytes, -(rows x channels))` of a chunk and block of rows, if they fit.
    let cost = |cc2: u32, cob: u32, rows: u32| {
        let ok = blocks(rows).all(|e| e.r1 > e.r0 && e.start <= e.a);
        let ih = blocks(rows).map(|e| e.ih).max().unwrap_or(0);
        let er = blocks(rows).map(|e| e.r1 - e.r0).max().unwrap_or(0);
        let grads = r8(g.window_len(cc2, ih)) + r8(u64::from(cc2) * u64::from(rows * g.w));
        let errs = r8(u64::from(cob) * u64::from(er * g.ow));
        let fit = grads + errs <= caps.delta && u64::from(cob) * u64::from(cc2) * kk <= caps.bpw;
        // Per chunk and block: the error rows (FP16 and their bitmap) and the weights.
        let weights = u64::from(g.cout) * u64::from(cc2) * kk * 2;
        let read = |e: ErrWindow| u64::from(g.cout) * u64::from((e.r1 - e.r0) * g.ow) * 17 / 8 + weights;
        let bytes = u64::from(g.cin / cc2) * blocks(rows).map(read).sum::<u64>();
        (ok && fit).then_some((bytes, u64::MAX - u64::from(cc2) * u64::from(rows)))
    };
    let divisors = |n: u32| (1..=n).rev().filter(move |d| n % d == 0);
    divisors(g.cout).find_map(|cob| {
        let rows = divisors(g.h).filter(|&r| r < g.h);
        let pairs = divisors(g.cin).flat_map(|cc2| rows.clone().map(move |r| (cc2, r)));
        let best = pairs.filter_map(|(cc2, rows)| cost(cc2, cob, rows).map(|c| (c, rows, cc2))).min();
        best.map(|(_, rows, cc2)| (cc2, cob, rows))
    })
}

/// Channels per group of a pooling's own pass (see `pool.rs`): the group's whole spike maps
/// and pooled maps fit `fp.spk` (and `fp.mem` for average pooling's FP16 output) forward,
/// and its FP16 pooled and spread gradients fit `bp.delta` backward; spike maps and pooled
/// spikes move in whole bytes. Of the groups that fit, the largest that still gives every
/// core one wins (fewer, longer instructions), else the most groups.
pub(super) fn pool_group(g: &ConvGeom, pool: &Pooling, caps: &Caps) -> Result<u32, String> {
    let max = pool.kind == PoolKind::Max;
    let fits = |cp: u32| {
        let (maps, pooled) = (u64::from(cp * g.oh * g.ow), u64::from(pool.len(cp)));
        let bytes_ok = maps % 8 == 0 && (!max || pooled % 8 == 0);
        let fp_ok = if max { maps + pooled <= caps.spk } else { maps <= caps.spk && pooled <= caps.mem };
        bytes_ok && fp_ok && maps + pooled <= caps.delta
    };
    let spread = u64::from(g.cout).min(caps.cores);
    (1..=g.cout)
        .filter(|cp| g.cout % cp == 0 && fits(*cp))
        .max_by_key(|&cp| {
            let enough = u64::from(g.cout / cp) >= spread;
            (enough, if enough { cp } else { g.cout / cp })
        })
        .ok_or_else(|| "no group of whole channel maps and their pooled maps fits `fp.spk` and `bp.delta`".to_string())
}

/// How a linear layer (`k` inputs, `n` outputs) is cut, for `bt = B x T` sample-steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LinearTiling {
    /// Samples per group: a tile's rows are its `g x T` sample-steps, and the `B / g`
    /// groups run one after another (all `B` when they fit, which is the usual case).
    pub(super) g: u32,
    /// Outputs per tile (all `g x T` partial sums of a tile stay in `fp.psum`).
    pub(super) nb: u32,
    /// Weight rows per streamed chunk of the forward pass.
    pub(super) kc: u32,
    /// Inputs per block of the input-gradient pass, outputs per chunk of it.
    pub(super) kb2: u32,
    pub(super) nc2: u32,
    /// Inputs per weight-gradient block (a block is `kb x nb`).
    pub(super) kb: u32,
}

/// The tiling of a linear layer, or why none fits. `whole_n`: the layer is the output, so
/// one tile must hold all outputs (the loss reads them together); `byte_n`: tiles must be
/// whole bytes of spikes, because the next layer reads them from DRAM.
pub(super) fn linear(
    k: u32,
    n: u32,
    (b, t): (u32, u32),
    dense: bool,
    output: bool,
    caps: &Caps,
) -> Result<LinearTiling, String> {
    // The largest group of samples whose rows fit; the error of the whole batch otherwise.
    let whole = linear_group(k, n, b * t, dense, output, caps);
    if whole.is_ok() {
        return whole.map(|tiling| LinearTiling { g: b, ..tiling });
    }
    (1..b)
        .rev()
        .filter(|g| b % g == 0)
        .find_map(|g| linear_group(k, n, g * t, dense, output, caps).ok().map(|tiling| LinearTiling { g, ..tiling }))
        .ok_or_else(|| whole.err().unwrap_or_default())
}

/// The tiling of a linear layer for tiles of `bt` rows (`g` left to the caller).
fn linear_group(k: u32, n: u32, bt: u32, dense: bool, output: bool, caps: &Caps) -> Result<LinearTiling, String> {
    let bt64 = u64::from(bt);
    let bits_ok = |e: u32| dense || e % 8 == 0;
    // The output layer's spikes are stored per tile, so its tiles need not be whole bytes;
    // its loss reads the sums of all outputs of a sample at once, in `wg.grad`.
    if output && u64::from(n) >= caps.wgerr {
        return Err(format!("the loss over {n} outputs does not fit `wg.grad`"));
    }
    // Leave `fp.w` room for a chunk of at least one byte of spike rows.
    let rows_min = if dense { 1 } else { 8 };
    // A hidden layer's spikes go to DRAM row by row, `d` bits per sample-step; the output
    // layer's, like every layer's masks, in blocks padded to whole bytes.
    let nb = divisor(n, (caps.psum / bt64).min(caps.fpw / rows_min), |d| output || d % 8 == 0)
        .ok_or_else(|| format!("no block of the {n} outputs with all {bt} sample-steps fits `fp.psum`"))?;
    let in_cap = if dense { caps.mem / 2 } else { caps.fpin };
    let kc = divisor(k, caps.fpw / u64::from(nb), |d| bits_ok(d) && bt64 * u64::from(d) <= in_cap)
        .ok_or_else(|| no_input_chunk(k, nb, dense, caps))?;
    let kb2 = divisor(k, (caps.bpsum / bt64).min(caps.bpw), |_| true)
        .ok_or_else(|| format!("no block of inputs with all {bt} sample-steps fits `bp.psum`"))?;
    let nc2 = divisor(n, caps.bpw / u64::from(kb2), |d| bt64 * u64::from(d) <= caps.delta)
        .ok_or_else(|| "no chunk of outputs fits `bp.w`".to_string())?;
    let kb = divisor(k, caps.wgerr / u64::from(nb), |d| bits_ok(d) && bt64 * u64::from(d) <= in_cap)
        .ok_or_else(|| "no weight-gradient block fits `wg.grad`".to_string())?;
    Ok(LinearTiling { g: 0, nb, kc, kb2, nc2, kb })
}

/// Why no chunk of a linear layer's `k` inputs fits `fp.w` beside a block of `nb` outputs:
/// what a chunk must be, so that a user can pick an input size that has one.
fn no_input_chunk(k: u32, nb: u32, dense: bool, caps: &Caps) -> String {
    let cap = caps.fpw / u64::from(nb.max(1));
    let bytes = if dense { "" } else { ", be a multiple of 8 (whole bytes of spikes)" };
    format!(
        "no chunk of the {k} inputs fits `fp.w`: a chunk must divide {k}{bytes} and, for a block of {nb} \
         outputs, hold at most {cap} inputs"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            psum: 4096,
            fpw: 1152,
            fpin: 18496,
            spk: 262144,
            mem: 65536,
            bpw: 1152,
            bpsum: 4096,
            delta: 65536,
            wgerr: 4096,
            opt: 1572864 / 20,
            cores: 20,
            // 16x16 PEs, each weight read serving a column of 16 (see `plan.rs`).
            bp_macs: 256,
            dram_bytes_per_cycle: 16,
            dram_latency: 100,
        }
    }

    fn vgg(cin: u32, cout: u32, hw: u32) -> ConvGeom {
        ConvGeom { cin, h: hw, w: hw, cout, oh: hw, ow: hw, k: 3, s: 1, p: 1 }
    }

    #[test]
    fn divisor_finds_the_largest_that_fits() {
        assert_eq!(divisor(128, 40, |_| true), Some(32));
        assert_eq!(divisor(10, 4, |d| d % 2 == 0), Some(2));
        assert_eq!(divisor(7, 6, |_| true), Some(1));
        assert_eq!(divisor(7, 0, |_| true), None);
    }

    #[test]
    fn conv_tiles_respect_every_buffer() {
        for (g, dense, pool) in [
            (vgg(3, 64, 32), false, None),
            (vgg(64, 128, 32), false, Some((2, false))),
            (vgg(128, 256, 16), true, Some((2, false))),
            (vgg(32, 64, 64), false, Some((2, true))),
        ] {
            let t = conv(&g, dense, pool, true, &caps()).unwrap_or_else(|e| panic!("{g:?}: {e}"));
            assert!(u64::from(t.tile(&g)) <= 4096, "{g:?} {t:?}");
            assert_eq!(g.cout % t.co, 0);
            assert_eq!(g.oh % t.rows, 0);
            assert_eq!(g.cin % t.cc, 0);
            assert!(t.co * t.cc * g.kk() <= 1152);
            assert!(t.cob * t.cc2 * g.kk() <= 1152);
            if let Some((k, _)) = pool {
                assert_eq!(t.rows % k, 0);
            }
        }
    }

    /// The input-gradient chunks of vgg_cifar_small's big convs. The largest that fit
    /// `bp.delta` beside a block of errors (65536 values: 16 channels of 34² + 32² with 8
    /// maps of 32², 64 of 18² + 16² with 2 maps of 16²) win where the error reads through
    /// DRAM dominate. On the built-in chip (256 products a cycle, DRAM sixteen bytes a
    /// cycle and 100 cycles away) conv2's 16 do too, but conv3's 64 would take a core
    /// 147,456 cycles of products and 38,400 of latency (128 blocks of 3 loads) per
    /// sample-step, against 73,728 + 19,200 for chunks of 32, whose 4 x 286,720 bytes of
    /// errors and weights take 143,360 cycles through DRAM at half speed: 32 win. Where the
    /// products dominate (an array fed sixteen weights a cycle, one per product), smaller
    /// chunks spread over the cores, but never more chunks than cores.
    #[test]
    fn input_gradient_chunks_weigh_products_against_error_reads() {
        for (g, largest, on_chip) in [(vgg(64, 128, 32), 16, 16), (vgg(128, 256, 16), 64, 32)] {
            let slow_dram = Caps { cores: 16, bp_macs: 1 << 20, dram_bytes_per_cycle: 1, ..caps() };
            assert_eq!(conv_igrad_whole(&g, &slow_dram).map(|c| c.0), Some(largest), "{g:?}");
            let chip = Caps { cores: 16, ..caps() };
            assert_eq!(conv_igrad_whole(&g, &chip).map(|c| c.0), Some(on_chip), "{g:?}");
            let slow_array = Caps { cores: 16, bp_macs: 16, ..caps() };
            let (cc2, cob) = conv_igrad_whole(&g, &slow_array).unwrap_or_else(|| panic!("{g:?}"));
            assert!(cc2 < on_chip && g.cin / cc2 <= 16, "{g:?}: {cc2}");
            assert!(g.cin % cc2 == 0 && cob * cc2 * g.kk() <= 1152, "{g:?}: {cc2} x {cob}");
        }
    }

    /// On a small map (resnet_digits' 16 channels of 16x16) the products of a chunk are few,
    /// and the DRAM latency that the BP stream waits out for each block's loads decides:
    /// with it, two chunks of 8 channels, each on its own core, end first; without it, one
    /// chunk of all 16 would.
    #[test]
    fn input_gradient_chunks_count_the_latency_of_their_loads() {
        let g = vgg(16, 16, 16);
        let chip = Caps { cores: 16, ..caps() };
        assert_eq!(conv_igrad_whole(&g, &chip).map(|c| c.0), Some(8));
        let no_latency = Caps { dram_latency: 0, ..chip };
        assert_eq!(conv_igrad_whole(&g, &no_latency).map(|c| c.0), Some(16));
    }

    #[test]
    fn a_big_feature_map_is_cut_into_row_blocks() {
        // Blocks of 2 channels x 16 rows fill `fp.psum`; their window of 18 padded rows holds
        // both input channels, and the 16 channel blocks leave no core with two of them.
        let t = conv(&vgg(2, 32, 128), false, Some((2, true)), false, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.co, t.rows, t.cc), (2, 16, 2));
        assert!(t.windowed(&vgg(2, 32, 128)));
    }

    #[test]
    fn imagenet_maps_are_read_in_windows_that_fit() {
        // VGG-16's first stages: one padded 226 x 226 channel exceeds `fp.in`.
        for (g, dense) in [(vgg(3, 64, 224), true), (vgg(64, 64, 224), false), (vgg(64, 128, 112), true)] {
            let t = conv(&g, dense, None, true, &caps()).unwrap_or_else(|e| panic!("{g:?}: {e}"));
            let wh = g.in_window(t.rows, 0).1;
            let cap = if dense { 65536 / 4 } else { 18496 };
            assert!(t.windowed(&g) && g.window_len(t.cc, wh) <= cap, "{g:?} {t:?}");
            assert!(t.rows * g.ow <= 4096 && g.oh % t.rows == 0 && g.cin % t.cc == 0, "{t:?}");
            assert!(t.rows2 <= g.h && g.h % t.rows2 == 0 && g.cin % t.cc2 == 0 && g.cout % t.cob == 0, "{t:?}");
        }
    }

    #[test]
    fn error_windows_cover_the_rows_that_reach_a_block() {
        // 3x3, padding 1, stride 1: input rows 4..8 are padded rows 5..9, reached by output
        // rows 3..9 (row r reads r..r+3), whose transpose writes padded rows 3..11.
        let g = vgg(1, 1, 16);
        let e = g.err_window(4, 1);
        assert_eq!(e, ErrWindow { r0: 3, r1: 9, start: 3, ih: 8, a: 5 });
        // The first block starts at the top border; the last ends at the bottom one.
        assert_eq!(g.err_window(4, 0), ErrWindow { r0: 0, r1: 5, start: 0, ih: 7, a: 1 });
        assert_eq!(g.err_window(4, 3), ErrWindow { r0: 11, r1: 16, start: 11, ih: 7, a: 13 });
        // Stride 2 without padding over 16 rows (7 output rows): row 15 is reached by no
        // output row, yet the window of the last block still covers it.
        let s2 = ConvGeom { s: 2, p: 0, oh: 7, ow: 7, ..g };
        assert_eq!(s2.err_window(4, 3), ErrWindow { r0: 5, r1: 7, start: 10, ih: 6, a: 12 });
        assert_eq!(s2.in_window(4, 1), (8, 9));
    }

    #[test]
    fn pooling_groups_fit_their_buffers_and_spread_over_the_cores() {
        // ResNet's stem: 64 maps of 112 x 112 spikes pooled to 56 x 56. Groups of 2 maps
        // (25,088 spikes and 6,272 pooled values) fit, and 32 groups keep all 20 cores busy.
        let stem = ConvGeom { cin: 3, h: 224, w: 224, cout: 64, oh: 112, ow: 112, k: 7, s: 2, p: 3 };
        let pool = Pooling { kind: PoolKind::Max, k: 3, stride: 2, pad: 1, oh: 56, ow: 56 };
        assert_eq!(pool_group(&stem, &pool, &caps()), Ok(2));
        // With fewer channels than cores, one map per group.
        assert_eq!(pool_group(&ConvGeom { cout: 8, ..stem }, &pool, &caps()), Ok(1));
        // A `bp.delta` too small for one map and its pooled map is an error, not a panic.
        let small = Caps { delta: 12544, ..caps() };
        assert!(pool_group(&stem, &pool, &small).is_err());
    }

    #[test]
    fn linear_tiles_hold_all_sample_steps() {
        let t = linear(16384, 10, (8, 4), true, true, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.g, t.nb), (8, 10));
        assert!(t.kc * 10 <= 1152 && 16384 % t.kc == 0);
        let t = linear(784, 512, (32, 8), false, false, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.nb * 256 <= 4096 && t.nb % 8 == 0 && t.g == 32);
        assert!(linear(784, 5000, (512, 8), false, true, &caps()).is_err());
    }

    /// When a tile cannot hold the partial sums of the whole batch for even 8 outputs, the
    /// samples are taken in groups: the largest that fits.
    #[test]
    fn large_batches_are_cut_into_sample_groups() {
        let t = linear(784, 512, (128, 8), false, false, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.g, 64, "64 x 8 rows x 8 outputs fill the 4096 partial sums");
        assert!(t.nb * t.g * 8 <= 4096);
        let err = linear(784, 512, (1, 8192), false, false, &caps()).err().unwrap_or_default();
        assert!(err.contains("8192 sample-steps"), "{err}");
    }
}
