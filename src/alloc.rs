//! The process's allocator: mimalloc, asked through its plain entry points whenever they
//! already give the alignment a layout needs.
//!
//! The `mimalloc` crate's `MiMalloc` passes every allocation to `mi_malloc_aligned`, whose
//! fast path does `mi_malloc`'s work plus tests of the alignment and of the block it found
//! (about 20 instructions more per allocation, callgrind). Nearly every Rust allocation needs
//! no more than mimalloc guarantees anyway: a block of at least `align` bytes is aligned to
//! `align` up to 16 (`MI_MAX_ALIGN_SIZE`; `mi_malloc_is_naturally_aligned` in mimalloc's
//! `alloc-aligned.c`). This is the rule the standard library's `System` allocator applies to
//! `malloc` (its `MIN_ALIGN`). Other layouts still go to the aligned entry points.
//!
//! The binary, the benches and the examples install it with `#[global_allocator]`. This is
//! the library's only `unsafe` code (`lib.rs` denies it everywhere else).

use libmimalloc_sys as mi;
use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// mimalloc's allocator, calling `mi_malloc` / `mi_zalloc` / `mi_realloc` for every layout
/// their natural alignment covers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Mimalloc;

/// The largest alignment `mi_malloc` gives every block of at least that many bytes.
const NATURAL_ALIGN: usize = 16;

/// Whether a block of `size` bytes from the plain entry points is aligned enough for `align`.
#[inline(always)]
fn naturally_aligned(size: usize, align: usize) -> bool {
    align <= NATURAL_ALIGN && align <= size
}

/// A new block for `layout` from mimalloc's `plain` entry point when its natural alignment
/// is enough, else from its `aligned` one: `alloc` and `alloc_zeroed` differ only in the pair.
/// Always inlined, so that each call names its entry point directly.
///
/// # Safety
/// `plain` and `aligned` must be mimalloc's entry points of one family (`mi_malloc` and
/// `mi_malloc_aligned`, or the zeroing pair).
#[inline(always)]
unsafe fn new_block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    // SAFETY: mimalloc's entry points may be called with any size and, for the aligned one,
    // any power-of-two alignment, which `Layout` guarantees.
    unsafe {
        if naturally_aligned(size, align) {
            plain(size).cast()
        } else {
            aligned(size, align).cast()
        }
    }
}

// SAFETY: every method forwards to mimalloc, which meets `GlobalAlloc`'s contract: `mi_malloc`,
// `mi_zalloc` and `mi_realloc` return blocks aligned to `align` whenever `naturally_aligned`
// holds (mimalloc's documented natural alignment, above), and the `_aligned` entry points
// return blocks aligned to any power of two, which `Layout` guarantees `align` is. Every block
// is freed by `mi_free` and resized by `mi_realloc(_aligned)`, which accept blocks from either
// family. Null is returned on exhaustion, never a dangling pointer.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the allocating pair.
        unsafe { new_block(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the zeroing pair.
        unsafe { new_block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned, which mimalloc made.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        // SAFETY: the caller passes a block this allocator returned with `layout`, and a
        // `new_size` that is valid with `align`; the new block is aligned as `alloc`'s are.
        unsafe {
            if naturally_aligned(new_size, align) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, align).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills `size` bytes at `p` with a pattern, or checks that they still hold it.
    unsafe fn pattern(p: *mut u8, size: usize, write: bool) {
        for i in 0..size {
            // SAFETY: the caller's block holds at least `size` bytes.
            unsafe {
                if write {
                    *p.add(i) = i as u8;
                } else {
                    assert_eq!(*p.add(i), i as u8, "byte {i}");
                }
            }
        }
    }

    /// Blocks of every small size and some large ones, at every alignment up to a page, come
    /// back aligned whichever entry point served them; zeroed ones are zero; growing and
    /// shrinking keep the contents and the alignment.
    #[test]
    fn blocks_are_aligned_and_keep_their_bytes() {
        let a = Mimalloc;
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for size in (1..=600).chain([1000, 4095, 4096, 70_000]) {
                let layout = Layout::from_size_align(size, align).unwrap();
                let aligned = |p: *mut u8| !p.is_null() && p as usize % align == 0;
                // SAFETY: non-zero sizes; each block is used within its size and freed once,
                // with the layout it has at that point.
                unsafe {
                    let zeroed = a.alloc_zeroed(layout);
                    assert!(aligned(zeroed), "zeroed {size} at {align}");
                    assert!(
                        std::slice::from_raw_parts(zeroed, size)
                            .iter()
                            .all(|&b| b == 0)
                    );
                    a.dealloc(zeroed, layout);

                    let p = a.alloc(layout);
                    assert!(aligned(p), "{size} at {align}");
                    pattern(p, size, true);
                    let grown = a.realloc(p, layout, size * 3);
                    assert!(aligned(grown), "{size} grown at {align}");
                    pattern(grown, size, false);
                    let half = size.div_ceil(2);
                    let grown_layout = Layout::from_size_align(size * 3, align).unwrap();
                    let shrunk = a.realloc(grown, grown_layout, half);
                    assert!(aligned(shrunk), "{size} shrunk at {align}");
                    pattern(shrunk, half, false);
                    a.dealloc(shrunk, Layout::from_size_align(half, align).unwrap());
                }
            }
        }
    }
}
