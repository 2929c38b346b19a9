//! The pooling layer a conv unit ends with, as both generators emit it: kind, window,
//! stride, padding and output size. The output size comes from the graph's shape inference
//! (`graph/shape.rs`, PyTorch's floor rule), and [`Pooling::of`] checks it against the
//! ISA's own rule ([`isa::PoolGeometry`]) so the program and the graph cannot disagree.

use super::CodegenError;
use crate::graph::{Layer, LayerGraph};
use crate::model::Op;
use isa::{Access, Instr, PoolGeometry, PoolKind};

/// A pooling layer over a `c x h x w` spike map, giving `c x oh x ow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Pooling {
    pub(super) kind: PoolKind,
    pub(super) k: u32,
    pub(super) stride: u32,
    pub(super) pad: u32,
    pub(super) oh: u32,
    pub(super) ow: u32,
}

impl Pooling {
    /// The pooling that reads neuron layer `nl`'s `c x h x w` spikes, if any; an error naming
    /// the pooling layer when the ISA cannot express it.
    pub(super) fn of(
        graph: &LayerGraph,
        nl: &Layer,
        (c, h, w): (u32, u32, u32),
    ) -> Result<Option<Pooling>, CodegenError> {
        let Some((layer, kind, p)) = graph.consumers(nl.id).find_map(|l| match &l.op {
            Op::AvgPool(p) => Some((l, PoolKind::Avg, *p)),
            Op::MaxPool(p) => Some((l, PoolKind::Max, *p)),
            _ => None,
        }) else {
            return Ok(None);
        };
        let fail = |what: String| CodegenError::Unsupported { layer: layer.name.clone(), what };
        let byte = |v: u32| {
            u8::try_from(v).map_err(|_| fail(format!("a pooling window, stride or padding of {v} (at most 255)")))
        };
        let (k8, s8, p8) = (byte(p.kernel)?, byte(p.stride)?, byte(p.padding)?);
        let field =
            |v: u32| u16::try_from(v).map_err(|_| fail(format!("a pooled map with a side or channel count of {v}")));
        let g = PoolGeometry { c: field(c)?, ih: field(h)?, iw: field(w)?, k: k8, stride: s8, pad: p8 };
        let sizes = g.sizes().map_err(|e| fail(format!("this pooling: {e}")))?;
        let &[_, oh, ow] = layer.shape.as_slice() else {
            return Err(fail("a pooling layer whose output is not `[C, H, W]`".into()));
        };
        if (u64::from(oh), u64::from(ow)) != (sizes.oh, sizes.ow) {
            return Err(CodegenError::Internal(vec![format!(
                "pooling `{}`: the graph infers {oh}x{ow} but the ISA computes {}x{}",
                layer.name, sizes.oh, sizes.ow
            )]));
        }
        Ok(Some(Pooling { kind, k: p.kernel, stride: p.stride, pad: p.padding, oh, ow }))
    }

    /// Whether the windows tile an `h x w` map exactly (stride = window, no padding, the
    /// window dividing both sides): the case a conv tile of whole rows can pool on its own.
    pub(super) fn tiles(&self, h: u32, w: u32) -> bool {
        self.stride == self.k && self.pad == 0 && h % self.k == 0 && w % self.k == 0
    }

    /// Pooled elements of `c` channels.
    pub(super) fn len(&self, c: u32) -> u32 {
        c * self.oh * self.ow
    }

    /// `fp.pool` of `c` channels of `ih x iw` spikes (checked to fit the fields when planned).
    pub(super) fn forward(&self, src: Access, dst: Access, (c, ih, iw): (u32, u32, u32)) -> Instr {
        let (c, ih, iw, k, stride, pad) = self.fields(c, ih, iw);
        Instr::FpPool { kind: self.kind, src, dst, c, ih, iw, k, stride, pad }
    }

    /// `bp.pool` of `c` channels of `ih x iw` spikes; max pooling routes by the spikes `x`.
    pub(super) fn backward(&self, dy: Access, dx: Access, x: Access, (c, ih, iw): (u32, u32, u32)) -> Instr {
        let (c, ih, iw, k, stride, pad) = self.fields(c, ih, iw);
        let x = (self.kind == PoolKind::Max).then_some(x);
        Instr::BpPool { kind: self.kind, dy, dx, x, c, ih, iw, k, stride, pad }
    }

    fn fields(&self, c: u32, ih: u32, iw: u32) -> (u16, u16, u16, u8, u8, u8) {
        let (h, b) = (super::emit::h16, |v: u32| u8::try_from(v).unwrap_or(u8::MAX));
        (h(c), h(ih), h(iw), b(self.k), b(self.stride), b(self.pad))
    }
}
