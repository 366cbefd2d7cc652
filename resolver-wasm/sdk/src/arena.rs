//! The call arena, the SDK's global allocator on wasm32: allocation bumps a pointer through one
//! chunk of memory, a free only counts, and the chunk is rewound as soon as nothing allocated
//! in it is held any more, which is once per call: a packed call's answer is freed by the next
//! call's first allocation ([`CallArena::hold`]), a typed call's by the host's `post-return`.
//!
//! A call unpacks its arguments into a few hundred small strings and vectors, merges, and
//! drops them all; with the general-purpose allocator (dlmalloc on wasm32) that bookkeeping
//! costs more than the merge (BENCHMARKS.md). Here it is an addition and a comparison. Two
//! more things follow from a free that only counts: the arguments' strings can own their bytes
//! where they lie in the call instead of copies ([`CallArena::share`]), and the arguments can
//! be released at once after the call instead of string by string ([`CallArena::release`]).
//!
//! The first chunk is a static, so it lies in the module's initial memory: a call that fits in
//! it never grows the memory. Growing costs a fresh instance two `mprotect`s (one to grow, one
//! when the pooling allocator resets the slot for the next instance), each a TLB flush on every
//! core: about a third of what a fresh instance cost before (BENCHMARKS.md).
//!
//! Safe for policies that keep something between calls (a cache in a static, against the
//! contract's advice): the arena is rewound only when no block is live, so nothing a policy
//! still holds is ever reused. Until then allocations continue after the survivors, and once
//! the chunk is full they go to the general allocator.

// Natively only the tests use it.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// The first chunk, in the module's initial memory (zeroed static data: it adds nothing to the
/// component's size, and the pages a call does not touch cost nothing).
const FIRST_CHUNK: usize = 1024 * 1024;
/// The largest chunk kept (the host caps a policy's memory at 64 MiB by default).
const MAX_CHUNK: usize = 16 * 1024 * 1024;
const CHUNK_ALIGN: usize = 16;

#[repr(C, align(16))]
struct FirstChunk(UnsafeCell<[u8; FIRST_CHUNK]>);

// SAFETY: wasm32 guests are single-threaded; the chunk is only reached through the arena.
unsafe impl Sync for FirstChunk {}

static FIRST: FirstChunk = FirstChunk(UnsafeCell::new([0; FIRST_CHUNK]));

pub struct CallArena {
    start: Cell<usize>,
    end: Cell<usize>,
    next: Cell<usize>,
    /// Arena blocks not yet freed.
    live: Cell<usize>,
    /// Bytes wanted from the arena since it was last rewound, and not found there.
    missed: Cell<usize>,
    /// The last packed answer, held until the host has copied it out ([`CallArena::hold`]):
    /// its pointer and capacity, or a null pointer.
    held: Cell<(*mut u8, usize)>,
}

// SAFETY: wasm32 guests are single-threaded; the cells are never shared between threads.
unsafe impl Sync for CallArena {}

impl CallArena {
    pub const fn new() -> Self {
        CallArena {
            start: Cell::new(0),
            end: Cell::new(0),
            next: Cell::new(0),
            live: Cell::new(0),
            missed: Cell::new(0),
            held: Cell::new((std::ptr::null_mut(), 0)),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.start.get() && p < self.end.get()
    }

    /// Whether `bytes` lie in the arena's chunk, where [`CallArena::share`] may hand out
    /// strings that own parts of them.
    pub fn holds(&self, bytes: &[u8]) -> bool {
        !bytes.is_empty()
            && self.owns(bytes.as_ptr().cast_mut())
            && bytes.as_ptr() as usize + bytes.len() <= self.end.get()
    }

    /// Runs `f` and counts the arena blocks it leaves live: `None` if any of its allocations
    /// missed the arena (then what `f` built must be dropped the ordinary way).
    pub fn count_blocks<T>(&self, f: impl FnOnce() -> T) -> (T, Option<usize>) {
        let (live, missed) = (self.live.get(), self.missed.get());
        let value = f();
        let fits = self.missed.get() == missed && self.live.get() >= live;
        (value, fits.then(|| self.live.get() - live))
    }

    /// Frees at once `blocks` arena blocks whose owner was forgotten instead of dropped: one
    /// subtraction instead of a walk that frees each string and vector.
    ///
    /// # Safety
    ///
    /// The blocks are live arena blocks (counted by [`CallArena::count_blocks`]) and nothing
    /// refers to them any more.
    pub unsafe fn release(&self, blocks: usize) {
        let live = self.live.get() - blocks;
        self.live.set(live);
        if live == 0 {
            self.rewind();
        }
    }

    /// A `String` that owns the bytes of `s` where they lie, without copying them: `s` must be
    /// a slice of a block for which [`CallArena::holds`] is true, and the `String` must never
    /// be written to or grown (the SDK only lends such strings to a policy by `&`).
    ///
    /// Why this is sound with this allocator: freeing an arena block only counts it, whatever
    /// its pointer and size, so the `String` is counted as one more live block. While it lives
    /// the arena does not rewind, so its bytes stay as they were even after the block they lie
    /// in is freed. Several such strings may share bytes (a region name the call spells once):
    /// nothing writes through them.
    ///
    /// # Safety
    ///
    /// As above: `s` lies inside a block the arena holds, and the string is only read.
    pub unsafe fn share(&self, s: &str) -> String {
        if s.is_empty() {
            return String::new();
        }
        debug_assert!(self.holds(s.as_bytes()));
        self.live.set(self.live.get() + 1);
        // SAFETY: the caller guarantees `s` is arena memory; dropping the string frees it into
        // the arena, which counts it down (above). Its capacity is its length, so any growth
        // reallocates into a new block and frees this one the same way.
        unsafe { String::from_raw_parts(s.as_ptr().cast_mut(), s.len(), s.len()) }
    }

    /// Keeps `answer` where it is until the next allocation, and frees it then: an export's
    /// answer that the host copies out after the export returns, without a post-return call to
    /// free it (the next call's first allocation is the host's for its arguments).
    ///
    /// `answer` must come from this allocator (on wasm32 it is the global one).
    pub fn hold(&self, answer: Vec<u8>) {
        self.free_held();
        let mut answer = std::mem::ManuallyDrop::new(answer);
        if answer.capacity() > 0 {
            self.held.set((answer.as_mut_ptr(), answer.capacity()));
        }
    }

    #[inline(always)]
    fn free_held(&self) {
        let (ptr, capacity) = self.held.get();
        if !ptr.is_null() {
            self.held.set((std::ptr::null_mut(), 0));
            // SAFETY: `hold` took these parts from a `Vec<u8>` of this allocator that it did
            // not drop; this frees its block once, as that vector's drop would have.
            unsafe { self.dealloc(ptr, Layout::from_size_align_unchecked(capacity, 1)) };
        }
    }

    fn use_chunk(&self, start: usize, size: usize) {
        self.start.set(start);
        self.end.set(start + size);
        self.next.set(start);
    }

    /// Called when the last live block is freed: starts over at the chunk's beginning, with a
    /// larger chunk if the blocks since the last rewind did not all fit.
    fn rewind(&self) {
        self.next.set(self.start.get());
        let missed = self.missed.replace(0);
        let capacity = self.end.get() - self.start.get();
        if missed == 0 || capacity >= MAX_CHUNK {
            return;
        }
        let size = (capacity + missed).next_power_of_two().min(MAX_CHUNK);
        // SAFETY: a valid, non-zero size and a power-of-two alignment.
        let chunk = unsafe { System.alloc(Layout::from_size_align_unchecked(size, CHUNK_ALIGN)) };
        if chunk.is_null() {
            return;
        }
        if self.start.get() != FIRST.0.get() as usize {
            // SAFETY: the old chunk came from `System` with this layout and holds no live block.
            unsafe {
                System.dealloc(
                    self.start.get() as *mut u8,
                    Layout::from_size_align_unchecked(capacity, CHUNK_ALIGN),
                )
            };
        }
        self.use_chunk(chunk as usize, size);
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: arena blocks are aligned as asked, lie inside one chunk, never overlap (the pointer
// only moves back when no block is live), and are never handed to `System`; everything else
// is `System`'s.
unsafe impl GlobalAlloc for CallArena {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.free_held();
        if self.end.get() == 0 {
            self.use_chunk(FIRST.0.get() as usize, FIRST_CHUNK);
        }
        // `align` is a power of two: a mask, not `next_multiple_of`'s division.
        let p = (self.next.get() + layout.align() - 1) & !(layout.align() - 1);
        match p.checked_add(layout.size()) {
            Some(end) if end <= self.end.get() => {
                self.next.set(end);
                self.live.set(self.live.get() + 1);
                p as *mut u8
            }
            _ => {
                self.missed.set(self.missed.get() + layout.size());
                // SAFETY: forwarded as is.
                unsafe { System.alloc(layout) }
            }
        }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            let live = self.live.get() - 1;
            self.live.set(live);
            if live == 0 {
                self.rewind();
            }
        } else {
            // SAFETY: not an arena block, so `System` allocated it with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: not an arena block, so `System` allocated it with this layout.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let p = ptr as usize;
        if new_size <= layout.size() {
            return ptr;
        }
        // The newest block grows in place while the chunk has room.
        if p + layout.size() == self.next.get() && p + new_size <= self.end.get() {
            self.next.set(p + new_size);
            return ptr;
        }
        // SAFETY: the caller guarantees a valid size for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block of at least the old size; the old one is freed once copied. If
        // the new block is the arena's, it is live, so freeing the old one cannot rewind the
        // arena under it.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size());
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CallArena;
    use std::alloc::{GlobalAlloc, Layout};

    /// What a packed call does to the arena: the host allocates the call's bytes, the policy
    /// allocates and frees, the answer is held for the host. The held answer must be freed by
    /// the next call's first allocation, so that every call starts at the beginning of the
    /// arena again (without the free, each call would start after the last one's answer).
    #[test]
    fn a_held_answer_is_freed_at_the_next_allocation_and_every_call_starts_over() {
        let arena = CallArena::new();
        let layout = |n| Layout::from_size_align(n, 1).unwrap();
        let mut start = None;
        for call in 0..10_000 {
            // SAFETY: blocks of this arena, freed once each with the layout they were made with;
            // the answer is handed to `hold` as a vector of this allocator.
            unsafe {
                let args = arena.alloc(layout(4096));
                assert!(arena.owns(args), "call {call} is in the arena");
                match start {
                    None => start = Some(args),
                    Some(p) => assert_eq!(p, args, "call {call} starts where the first did"),
                }
                let work = arena.alloc(layout(100));
                let answer = arena.alloc(layout(512));
                arena.dealloc(work, layout(100));
                arena.dealloc(args, layout(4096));
                arena.hold(Vec::from_raw_parts(answer, 300, 512));
                assert_eq!(
                    arena.live.get(),
                    1,
                    "only the answer is live after call {call}"
                );
            }
        }
    }
}

/// `memcmp` for the guest, in place of compiler-builtins' byte loop: most comparisons a merge
/// makes are of short names and regions, which [`crate::convert::compare`] compares a word at a
/// time (measured: 342 fewer instructions on a small conflict).
///
/// # Safety
///
/// As C's `memcmp`: `a` and `b` are valid for `n` bytes.
#[cfg(target_arch = "wasm32")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller guarantees both are valid for `n` bytes.
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, n),
            std::slice::from_raw_parts(b, n),
        )
    };
    crate::convert::compare(a, b)
}
