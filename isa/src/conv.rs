//! The geometry of a convolution instruction (`fp.conv`, `bp.conv`, `wg.conv`), defined once
//! so the verifier and the simulator agree on what fits and how large each operand is.

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
}
