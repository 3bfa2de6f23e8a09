//! The `intelmq-bridge` command; everything it does lives in the library.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::mem;

use libmimalloc_sys as mi;

/// mimalloc instead of the system allocator: the codecs build and drop
/// many small strings and maps per event, and glibc's malloc and free took
/// a third of all instructions (callgrind, intelmq -> idea).
#[global_allocator]
static ALLOCATOR: Mimalloc = Mimalloc;

/// mimalloc through its plain entry points wherever they give the
/// alignment asked for. Its aligned ones, which the `mimalloc` crate always
/// calls, send a block over 1 KB whose size is not a power of two (an
/// event's field list, an output line) through a slow, over-allocating
/// path, although every mimalloc block is word-aligned.
struct Mimalloc;

/// The alignment of every mimalloc block: block sizes are whole words.
const WORD: usize = mem::size_of::<usize>();

// SAFETY: mimalloc returns blocks of at least the size asked for, aligned as
// asked (a plain block is word-aligned, which is all it is asked for), or
// null; `mi_free` and the reallocation functions take any block it made.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: these are mimalloc's allocating functions.
        unsafe { new_block(layout, mi::mi_malloc, mi::mi_malloc_aligned) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe { new_block(layout, mi::mi_zalloc, mi::mi_zalloc_aligned) }
    }

    unsafe fn dealloc(&self, block: *mut u8, _layout: Layout) {
        // SAFETY: the caller passes a block this allocator made.
        unsafe { mi::mi_free(block.cast()) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        // SAFETY: the caller passes a block this allocator made with
        // `layout`; the new block keeps its alignment.
        let block = unsafe {
            match needs_alignment(layout) {
                None => mi::mi_realloc(block.cast(), size),
                Some(align) => mi::mi_realloc_aligned(block.cast(), size, align),
            }
        };
        block.cast()
    }
}

/// The alignment to ask mimalloc for, if `layout` needs more than the word
/// alignment every block has.
fn needs_alignment(layout: Layout) -> Option<usize> {
    Some(layout.align()).filter(|align| *align > WORD)
}

/// A new block for `layout`: from `plain` when a word-aligned block will
/// do, else from `aligned`.
///
/// # Safety
/// `plain` and `aligned` are mimalloc's allocating functions.
unsafe fn new_block(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: the caller passes mimalloc's functions, which take any size
    // and power-of-two alignment.
    let block = unsafe {
        match needs_alignment(layout) {
            None => plain(layout.size()),
            Some(align) => aligned(layout.size(), align),
        }
    };
    block.cast()
}

fn main() -> std::process::ExitCode {
    intelmq_bridge::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_keep_their_bytes_when_resized() {
        for align in [1, 2, 8, 16, 64, 4096] {
            for size in [1, 7, 24, 1000, 1792, 5000, 1 << 20] {
                let layout = Layout::from_size_align(size, align).unwrap();
                unsafe {
                    let block = ALLOCATOR.alloc(layout);
                    assert!(!block.is_null() && block as usize % align == 0);
                    block.write_bytes(0xA5, size);
                    let grown = ALLOCATOR.realloc(block, layout, size * 3);
                    assert!(!grown.is_null() && grown as usize % align == 0);
                    assert!((0..size).all(|at| *grown.add(at) == 0xA5));
                    ALLOCATOR.dealloc(grown, Layout::from_size_align(size * 3, align).unwrap());
                    let zeroed = ALLOCATOR.alloc_zeroed(layout);
                    assert!(!zeroed.is_null() && zeroed as usize % align == 0);
                    assert!((0..size).all(|at| *zeroed.add(at) == 0));
                    ALLOCATOR.dealloc(zeroed, layout);
                }
            }
        }
    }
}
