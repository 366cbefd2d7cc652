//! The call arena: while a packed call runs, the guest allocates by bumping a pointer through
//! one chunk of memory, frees are no-ops, and the chunk is reused by the next call.
//!
//! A call unpacks its arguments into a few hundred small strings and vectors, merges, and
//! drops them all; with the general-purpose allocator (dlmalloc on wasm32) that bookkeeping
//! costs more than the merge (BENCHMARKS.md). Here it is an addition and a comparison.
//!
//! Safe for policies that keep something between calls (a cache in a static, against the
//! contract's advice): the arena counts its live allocations and is rewound only when none is
//! left, so nothing a policy still holds is ever reused. Until then allocations continue after
//! the survivors, and once the chunk is full they go to the general allocator, as they do for
//! everything outside a packed call (the answer, the typed interface's calls).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The first chunk; a call that needed more makes the next chunk large enough.
const FIRST_CHUNK: usize = 64 * 1024;
/// The largest chunk kept (the host caps a policy's memory at 64 MiB by default).
const MAX_CHUNK: usize = 16 * 1024 * 1024;
const CHUNK_ALIGN: usize = 16;

pub struct CallArena {
    start: Cell<usize>,
    end: Cell<usize>,
    next: Cell<usize>,
    /// Arena allocations not yet freed.
    live: Cell<usize>,
    /// Allocating from the arena (inside a packed call).
    on: Cell<bool>,
    /// Bytes this call wanted from the arena and did not find.
    missed: Cell<usize>,
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
            on: Cell::new(false),
            missed: Cell::new(0),
        }
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        let p = ptr as usize;
        p >= self.start.get() && p < self.end.get()
    }

    /// Starts a call: allocations come from the arena until [`CallArena::pause`].
    pub fn begin(&self) {
        let capacity = self.end.get() - self.start.get();
        let wanted = (capacity + self.missed.get()).next_power_of_two();
        if self.live.get() == 0 && (capacity == 0 || wanted > capacity && capacity < MAX_CHUNK) {
            let size = wanted.clamp(FIRST_CHUNK, MAX_CHUNK);
            // SAFETY: the old chunk holds no live allocation; the layouts match.
            unsafe {
                if capacity > 0 {
                    System.dealloc(
                        self.start.get() as *mut u8,
                        Layout::from_size_align_unchecked(capacity, CHUNK_ALIGN),
                    );
                }
                let chunk = System.alloc(Layout::from_size_align_unchecked(size, CHUNK_ALIGN));
                let (start, end) = if chunk.is_null() {
                    (0, 0)
                } else {
                    (chunk as usize, chunk as usize + size)
                };
                self.start.set(start);
                self.end.set(end);
                self.next.set(start);
            }
        }
        self.missed.set(0);
        self.on.set(true);
    }

    /// Stops allocating from the arena (what is allocated next outlives the call).
    pub fn pause(&self) {
        self.on.set(false);
    }

    /// Ends a call: rewinds the arena if nothing allocated in it is still held.
    pub fn end(&self) {
        self.on.set(false);
        if self.live.get() == 0 {
            self.next.set(self.start.get());
        }
    }
}

impl Default for CallArena {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: arena blocks are aligned as asked, lie inside one chunk, never overlap (the pointer
// only moves forward until no block is live), and are never handed to `System`; everything
// else is `System`'s.
unsafe impl GlobalAlloc for CallArena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.on.get() {
            let p = self.next.get().next_multiple_of(layout.align());
            match p.checked_add(layout.size()) {
                Some(end) if end <= self.end.get() => {
                    self.next.set(end);
                    self.live.set(self.live.get() + 1);
                    return p as *mut u8;
                }
                _ => self.missed.set(self.missed.get() + layout.size()),
            }
        }
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.owns(ptr) {
            self.live.set(self.live.get() - 1);
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
        if p + layout.size() == self.next.get() && p + new_size <= self.end.get() && self.on.get() {
            self.next.set(p + new_size);
            return ptr;
        }
        // SAFETY: the caller guarantees a valid size for this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a fresh block of at least the old size; the old one is freed once copied.
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
