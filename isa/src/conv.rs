//! The geometry of a convolution instruction (`fp.conv`, `bp.conv`, `wg.conv`) and of a
//! pooling instruction (`fp.pool`, `bp.pool`), defined once so the verifier and the simulator
//! agree on what fits and how large each operand is.

/// Dimensions as the instructions carry them; the input is already padded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// Input channels.
    pub cin: u16,
    /// Output channels.
    pub cout: u16,
    /// Padded input height.
    pub ih: u16,
    /// Padded input width.
    pub iw: u16,
    /// Kernel height.
    pub kh: u8,
    /// Kernel width.
    pub kw: u8,
    /// Stride.
    pub stride: u8,
}

/// Element counts and output size of a convolution whose kernel fits its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSizes {
    /// Output height.
    pub oh: u64,
    /// Output width.
    pub ow: u64,
    /// Elements of the padded input, `cin*ih*iw`.
    pub input: u64,
    /// Elements of the weights, `cout*cin*kh*kw`.
    pub weights: u64,
    /// Elements of the output, `cout*oh*ow`.
    pub output: u64,
}

impl ConvGeometry {
    /// The operand sizes, or why the kernel does not fit (a zero dimension or stride, or a
    /// kernel larger than the input).
    pub fn sizes(&self) -> Result<ConvSizes, String> {
        let (kh, kw) = (u16::from(self.kh), u16::from(self.kw));
        if kh == 0 || kw == 0 || self.stride == 0 || kh > self.ih || kw > self.iw {
            return Err(format!(
                "kernel {}x{} with stride {} does not fit a {}x{} input (all must be at least 1)",
                self.kh, self.kw, self.stride, self.ih, self.iw
            ));
        }
        let out_dim = |i: u16, k: u16| u64::from((i - k) / u16::from(self.stride) + 1);
        let (oh, ow) = (out_dim(self.ih, kh), out_dim(self.iw, kw));
        let (cin, cout) = (u64::from(self.cin), u64::from(self.cout));
        Ok(ConvSizes {
            oh,
            ow,
            input: cin * u64::from(self.ih) * u64::from(self.iw),
            weights: cout * cin * u64::from(kh) * u64::from(kw),
            output: cout * oh * ow,
        })
    }
}

/// Dimensions of `fp.pool` / `bp.pool`: a `c x ih x iw` input, a `k x k` window moved by
/// `stride`, `pad` rows and columns of padding on every side (PyTorch's `MaxPool2d` /
/// `AvgPool2d` in floor mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// Channels.
    pub c: u16,
    /// Input height.
    pub ih: u16,
    /// Input width.
    pub iw: u16,
    /// Window height and width.
    pub k: u8,
    /// Stride.
    pub stride: u8,
    /// Padding on every side.
    pub pad: u8,
}

/// Output size and element counts of a pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizes {
    /// Output height, `(ih + 2*pad - k)/stride + 1`.
    pub oh: u64,
    /// Output width.
    pub ow: u64,
    /// Elements of the input, `c*ih*iw`.
    pub input: u64,
    /// Elements of the output, `c*oh*ow`.
    pub output: u64,
}

impl PoolGeometry {
    /// The operand sizes, or why the window does not fit: a zero window or stride, padding
    /// beyond half the window (PyTorch's limit, which keeps an in-bounds element in every
    /// window), or a window larger than the padded input.
    pub fn sizes(&self) -> Result<PoolSizes, String> {
        let (k, s, p) = (u64::from(self.k), u64::from(self.stride), u64::from(self.pad));
        let (ih, iw) = (u64::from(self.ih), u64::from(self.iw));
        if k == 0 || s == 0 || 2 * p > k || ih + 2 * p < k || iw + 2 * p < k {
            return Err(format!(
                "pool window {k} with stride {s} and padding {p} does not fit a {ih}x{iw} input \
                 (window and stride at least 1, padding at most half the window)"
            ));
        }
        let (oh, ow) = ((ih + 2 * p - k) / s + 1, (iw + 2 * p - k) / s + 1);
        let c = u64::from(self.c);
        Ok(PoolSizes { oh, ow, input: c * ih * iw, output: c * oh * ow })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_of_a_padded_3x3_and_a_kernel_that_does_not_fit() {
        let g = ConvGeometry { cin: 2, cout: 4, ih: 10, iw: 10, kh: 3, kw: 3, stride: 2 };
        let s = g.sizes().unwrap_or_else(|e| panic!("{e}"));
        // floor((10 - 3) / 2) + 1 = 4 in each direction, computed by hand.
        assert_eq!((s.oh, s.ow, s.input, s.weights, s.output), (4, 4, 200, 72, 64));
        assert!(ConvGeometry { kh: 11, ..g }.sizes().is_err());
        assert!(ConvGeometry { stride: 0, ..g }.sizes().is_err());
    }

    #[test]
    fn pool_sizes_round_down_as_pytorch_does() {
        // torchvision's stem: 112 -> floor((112 + 2 - 3) / 2) + 1 = 56.
        let g = PoolGeometry { c: 64, ih: 112, iw: 112, k: 3, stride: 2, pad: 1 };
        let s = g.sizes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.oh, s.ow, s.input, s.output), (56, 56, 64 * 112 * 112, 64 * 56 * 56));
        // A 5x7 map, window 2, stride 2: the last row and column are dropped.
        let s = PoolGeometry { c: 1, ih: 5, iw: 7, k: 2, stride: 2, pad: 0 }.sizes().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.oh, s.ow), (2, 3));
        assert!(PoolGeometry { pad: 2, ..g }.sizes().is_err());
        assert!(PoolGeometry { stride: 0, ..g }.sizes().is_err());
        assert!(PoolGeometry { k: 0, pad: 0, ..g }.sizes().is_err());
        assert!(PoolGeometry { ih: 1, pad: 0, ..g }.sizes().is_err());
    }
}
