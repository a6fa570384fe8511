//! Allocator tuning for MPC processes.
//!
//! A MASCOT batch allocates and frees many vectors of megabytes (OT-extension matrices, hashed
//! rows, frames). glibc serves each from a fresh mmap and unmaps it on free, so every batch pays
//! page faults and page clearing for memory it just gave back: about a quarter of preprocessing
//! time on a 2-core machine (docs/benchmarks.md). Keeping freed memory in the heap avoids that,
//! at the price of a resident size that stays near the largest batch's.

/// Largest allocation served from the heap rather than its own mapping (glibc's maximum).
const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory the heap keeps before returning any to the kernel.
const TRIM_THRESHOLD: i32 = 512 << 20;

/// Call once at process start, before other threads exist. Does nothing off glibc.
pub fn keep_bulk_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocator parameters, under glibc's own arena lock.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}
