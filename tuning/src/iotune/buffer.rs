//! A heap buffer aligned for O_DIRECT I/O (start address, and length, multiples of the DMA alignment).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::ptr::NonNull;

use crate::profile::DMA_ALIGN_BYTES;

/// An owned, zero-initialised buffer whose address and length are multiples of [`DMA_ALIGN_BYTES`].
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl AlignedBuf {
    /// Allocates `len` bytes (a non-zero multiple of the alignment) filled with a non-zero pattern, so
    /// devices that compress or deduplicate zero pages do not flatter the measurement.
    pub fn new(len: usize) -> AlignedBuf {
        let align = DMA_ALIGN_BYTES as usize;
        assert!(
            len > 0 && len.is_multiple_of(align),
            "DMA buffer length {len} must be a positive multiple of {align}"
        );
        let layout = match Layout::from_size_align(len, align) {
            Ok(layout) => layout,
            Err(err) => panic!("invalid DMA buffer layout {len}/{align}: {err}"),
        };
        // SAFETY: the layout has a non-zero size (asserted above); zeroed memory is initialised u8s.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout);
        };
        let mut buf = AlignedBuf { ptr, layout };
        let mut state: u32 = 0x9E37_79B9;
        for byte in buf.as_mut_slice() {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            *byte = state as u8;
        }
        buf
    }

    pub fn len(&self) -> usize {
        self.layout.size()
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr points to `len` initialised (alloc_zeroed) bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice (the memory is initialised by alloc_zeroed); &mut self makes it exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_aligned_and_filled() {
        let buf = AlignedBuf::new(8192);
        assert_eq!(buf.as_ptr() as usize % DMA_ALIGN_BYTES as usize, 0);
        assert_eq!(buf.len(), 8192);
        assert!(buf.as_slice().iter().any(|&b| b != 0));
    }

    #[test]
    #[should_panic(expected = "multiple")]
    fn rejects_unaligned_length() {
        AlignedBuf::new(100);
    }
}
