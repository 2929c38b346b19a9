//! Running the independent parts of one large instruction on several host threads.
//!
//! An engine instruction writes many outputs, and each output is a sum whose terms the
//! kernel adds in a fixed order. Which host thread computes an output therefore cannot
//! change its bits: a kernel with enough work may cut its outputs into disjoint pieces and
//! compute them on rayon's pool, and the result is the same as on one thread. Counts of
//! executed and skipped operations are integers, summed after the pieces in piece order.
//!
//! Small instructions stay on the calling thread, where handing work to another thread
//! costs more than it saves. `RAYON_NUM_THREADS=1` runs everything on one thread.

use rayon::prelude::*;

/// Work (multiply-adds, or element steps of comparable cost) below which no instruction is
/// split. It is only a floor: a hand-off to a sleeping pool thread costs tens of
/// microseconds, so each kernel sets its own threshold from measurements (the conv kernels:
/// [`MIN_SPLIT_WORK`](super::correlate::MIN_SPLIT_WORK) in `correlate.rs`).
pub(crate) const MIN_SPLIT_WORK: usize = 1 << 15;

/// Whether an instruction with `work` steps should be split over the host's threads.
pub(crate) fn worth_splitting(work: usize) -> bool {
    work >= MIN_SPLIT_WORK && rayon::current_num_threads() > 1
}

/// Calls `f(start, piece)` for consecutive pieces of `data`, each `piece_len` elements long
/// (the last may be shorter) and starting at element `start`, on the pool when `parallel`
/// and one after another otherwise; returns the results in piece order.
pub(crate) fn map_pieces<T, R, F>(data: &mut [T], piece_len: usize, parallel: bool, f: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(usize, &mut [T]) -> R + Sync + Send,
{
    let piece_len = piece_len.max(1);
    if parallel {
        data.par_chunks_mut(piece_len).enumerate().map(|(i, c)| f(i * piece_len, c)).collect()
    } else {
        data.chunks_mut(piece_len).enumerate().map(|(i, c)| f(i * piece_len, c)).collect()
    }
}

/// The length of each of `pieces` nearly equal pieces of `len` elements, rounded up to a
/// multiple of `align` (so that pieces start on a row or a vector boundary).
pub(crate) fn piece_len(len: usize, pieces: usize, align: usize) -> usize {
    let align = align.max(1);
    len.div_ceil(pieces.max(1)).div_ceil(align) * align
}

/// How many pieces to cut a split instruction into: a few per thread, so that a thread
/// that finishes early takes another piece.
pub(crate) fn pieces() -> usize {
    2 * rayon::current_num_threads()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_cover_the_data_in_order_on_the_pool_and_on_one_thread() {
        for parallel in [false, true] {
            let mut data: Vec<u32> = (0..1000).collect();
            let starts = map_pieces(&mut data, 96, parallel, |start, piece| {
                piece.iter_mut().for_each(|x| *x *= 2);
                (start, piece.len())
            });
            assert_eq!(starts.len(), 11);
            assert!(starts.iter().enumerate().all(|(i, &(s, n))| s == 96 * i && n == 96.min(1000 - s)));
            assert!(data.iter().enumerate().all(|(i, &x)| x as usize == 2 * i));
        }
    }

    #[test]
    fn piece_lengths_are_aligned_and_cover_the_length() {
        assert_eq!(piece_len(1000, 4, 1), 250);
        assert_eq!(piece_len(1000, 3, 16), 336);
        assert_eq!(piece_len(10, 4, 8), 8);
        assert_eq!(piece_len(0, 4, 8), 0);
        assert_eq!(piece_len(5, 0, 0), 5);
    }
}
