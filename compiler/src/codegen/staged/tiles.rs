//! Tile sizes of a staged program: how a conv or linear layer is cut so that every piece of
//! its working set fits the buffer it lives in. Pure arithmetic, tested on its own.

use crate::codegen::emit::h16;

/// The largest divisor of `n` that is at most `cap` and satisfies `ok`, if any.
pub(super) fn divisor(n: u32, cap: u64, ok: impl Fn(u32) -> bool) -> Option<u32> {
    (1..=n).rev().find(|&d| n % d == 0 && u64::from(d) <= cap && ok(d))
}

/// Buffer capacities (elements) the tiling works against.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caps {
    /// `fp.psum`, `fp.w`, `fp.in` (bits), `fp.mem`.
    pub(super) psum: u64,
    pub(super) fpw: u64,
    pub(super) fpin: u64,
    pub(super) mem: u64,
    /// `bp.w`, `bp.psum`, `bp.delta`, `wg.err`.
    pub(super) bpw: u64,
    pub(super) bpsum: u64,
    pub(super) delta: u64,
    pub(super) wgerr: u64,
    /// One core's share of `opt`.
    pub(super) opt: u64,
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

    /// The shape operands of `fp.conv`, `bp.conv` and `wg.conv` for `cin` input and `cout`
    /// output channels over `ih` padded input rows: `(cin, cout, ih, iw, kh, kw, stride)`.
    pub(super) fn operands(&self, cin: u32, cout: u32, ih: u32) -> (u16, u16, u16, u16, u8, u8, u8) {
        let byte = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
        (h16(cin), h16(cout), h16(ih), h16(self.wp()), byte(self.k), byte(self.k), byte(self.s))
    }
}

/// How a conv layer is cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ConvTiling {
    /// Output channels and rows per tile (a tile is `co x rows x ow`; either `rows = oh` or
    /// `co = 1`, so a tile is contiguous in `[C][H][W]`).
    pub(super) co: u32,
    pub(super) rows: u32,
    /// Input channels per streamed chunk (1 when tiles are row blocks).
    pub(super) cc: u32,
    /// Whether a tile's weights for all chunks fit `fp.w` at once.
    pub(super) resident: bool,
    /// Input channels per chunk of the input-gradient pass, and output channels per block.
    pub(super) cc2: u32,
    pub(super) cob: u32,
}

impl ConvTiling {
    pub(super) fn tile(&self, g: &ConvGeom) -> u32 {
        self.co * self.rows * g.ow
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
        None => {
            // Row blocks of one channel, one input channel at a time.
            let rows = divisor(g.oh, caps.psum / u64::from(g.ow.max(1)), |r| (r * g.ow) % 8 == 0 && pool_ok(1, r))
                .ok_or_else(|| "no block of output rows fits `fp.psum`".to_string())?;
            if !chunk_ok(1) || kk > caps.fpw {
                return Err("one padded input channel does not fit `fp.in`".into());
            }
            (1, rows, 1)
        }
    };
    let resident = u64::from(co) * u64::from(g.cin) * kk <= caps.fpw;
    let (cc2, cob) = if errors { conv_igrad(g, caps)? } else { (0, 0) };
    Ok(ConvTiling { co, rows, cc, resident, cc2, cob })
}

/// Chunks of the input-gradient pass: `cc2` input channels (padded and dense gradient in
/// `bp.delta`) against blocks of `cob` output channels' dL/dH (whole maps, also in
/// `bp.delta`) and weights (`bp.w`).
fn conv_igrad(g: &ConvGeom, caps: &Caps) -> Result<(u32, u32), String> {
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
        cob.filter(|_| grads <= caps.delta / 2).map(|cob| (cc2, cob))
    };
    (1..=g.cin)
        .rev()
        .filter(|c| g.cin % c == 0)
        .find_map(fits)
        .ok_or_else(|| "no chunk of the error map and block of output channels fit `bp.delta` and `bp.w`".to_string())
}

/// How a linear layer (`k` inputs, `n` outputs) is cut, for `bt = B x T` sample-steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LinearTiling {
    /// Outputs per tile (all `B x T` partial sums of a tile stay in `fp.psum`).
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
pub(super) fn linear(k: u32, n: u32, bt: u32, dense: bool, output: bool, caps: &Caps) -> Result<LinearTiling, String> {
    let bt64 = u64::from(bt);
    let bits_ok = |e: u32| dense || e % 8 == 0;
    let nb = if output {
        (bt64 * u64::from(n) <= caps.psum && u64::from(n) <= caps.fpw).then_some(n)
    } else {
        divisor(n, (caps.psum / bt64).min(caps.fpw), |d| d % 8 == 0 && (bt * d) % 8 == 0)
    }
    .ok_or_else(|| format!("no block of the {n} outputs with all {bt} sample-steps fits `fp.psum`"))?;
    let in_cap = if dense { caps.mem / 2 } else { caps.fpin };
    let kc = divisor(k, caps.fpw / u64::from(nb), |d| bits_ok(d) && bt64 * u64::from(d) <= in_cap)
        .ok_or_else(|| "no chunk of weight rows fits `fp.w`".to_string())?;
    let kb2 = divisor(k, (caps.bpsum / bt64).min(caps.bpw), |_| true)
        .ok_or_else(|| format!("no block of inputs with all {bt} sample-steps fits `bp.psum`"))?;
    let nc2 = divisor(n, caps.bpw / u64::from(kb2), |d| bt64 * u64::from(d) <= caps.delta)
        .ok_or_else(|| "no chunk of outputs fits `bp.w`".to_string())?;
    let kb = divisor(k, caps.wgerr / u64::from(nb), |d| bits_ok(d) && bt64 * u64::from(d) <= in_cap)
        .ok_or_else(|| "no weight-gradient block fits `wg.grad`".to_string())?;
    if (bt * nb) % 8 != 0 {
        return Err(format!("{bt} x {nb} spikes per tile are not whole bytes"));
    }
    Ok(LinearTiling { nb, kc, kb2, nc2, kb })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps() -> Caps {
        Caps {
            psum: 4096,
            fpw: 1152,
            fpin: 18496,
            mem: 65536,
            bpw: 1152,
            bpsum: 4096,
            delta: 65536,
            wgerr: 4096,
            opt: 1572864 / 20,
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
            assert!(t.rows == g.oh || (t.co == 1 && t.cc == 1), "{t:?}");
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

    #[test]
    fn a_big_feature_map_is_cut_into_row_blocks() {
        let t = conv(&vgg(2, 32, 128), false, Some((2, true)), false, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.co, t.rows, t.cc), (1, 32, 1));
    }

    #[test]
    fn linear_tiles_hold_all_sample_steps() {
        let t = linear(16384, 10, 32, true, true, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.nb, 10);
        assert!(t.kc * 10 <= 1152 && 16384 % t.kc == 0);
        let t = linear(784, 512, 256, false, false, &caps()).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.nb * 256 <= 4096 && t.nb % 8 == 0);
        assert!(linear(784, 5000, 4096, false, true, &caps()).is_err());
    }
}
