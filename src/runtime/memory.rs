//! How the process asks its allocator and the kernel for memory. Called once, first thing in
//! `main`, before any other thread exists.
//!
//! Measured with `tests/bench/tenants.py` at 1,000 tenants (release build, same machine, one
//! run each): the operator's live heap in steady state is ~17 MiB (heaptrack), yet its RSS was
//! 92 MiB. The difference was the allocator keeping what the start-up burst (the first lists,
//! thousands of reconciles) had used:
//!
//! - **Transparent huge pages** (24 MiB of the 92 were `AnonHugePages`): mimalloc asks for
//!   them (`madvise(MADV_HUGEPAGE)`), and a 2 MiB page with one live object stays resident
//!   whole. Off for the process: RSS 60 MiB.
//! - **Purge delay**: mimalloc v3 returns freed pages to the kernel 1 s after they were freed,
//!   but only when it next looks — a quiet process may not look for a long time. Immediate
//!   purging: RSS 50 MiB. A user's `MIMALLOC_PURGE_DELAY` still wins.
//! - **glibc** (builds without the `mimalloc` feature, e.g. for heaptrack): argon2id's 19 MiB
//!   blocks stay mmapped so they return to the kernel when freed (see [`limit_heap_growth`]).

/// Applies the settings above.
pub fn tune() {
    no_transparent_huge_pages();
    limit_heap_growth();
    #[cfg(feature = "mimalloc")]
    mimalloc::purge_immediately();
}

/// Turns transparent huge pages off for the whole process (`PR_SET_THP_DISABLE`, Linux ≥ 3.15),
/// whatever the machine's `/sys/kernel/mm/transparent_hugepage/enabled` says; the flag is
/// inherited by children. Errors are ignored: an older kernel simply keeps its default.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with PR_SET_THP_DISABLE only sets a flag on this process's memory map.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Every argon2id hash or verification allocates a 19 MiB block. glibc raises its mmap
/// threshold after the first such block is freed, so later ones come from per-thread arenas that
/// keep the memory: the process grew to ~900 MB after a few hundred secrets. A fixed threshold
/// of 1 MiB keeps those blocks mmapped, returned to the OS when freed (~50 MB steady).
fn limit_heap_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes an allocator tunable; it is called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// mimalloc's options by their number in mimalloc v3's `mi_option_t` (the `mimalloc` crate
/// builds v3; the numbers `libmimalloc-sys` exports are v2's names). The test below checks
/// that the number still holds the option's documented default.
#[cfg(feature = "mimalloc")]
mod mimalloc {
    use libmimalloc_sys::{mi_option_set, mi_option_t};

    /// `mi_option_purge_delay`: milliseconds between freeing a page and returning it.
    pub(super) const PURGE_DELAY: mi_option_t = 15;
    /// Its default in mimalloc v3.
    #[cfg(test)]
    pub(super) const PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;

    /// Returns freed pages to the kernel at once, unless `MIMALLOC_PURGE_DELAY` says otherwise.
    pub(super) fn purge_immediately() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: sets one integer option of the allocator.
            unsafe { mi_option_set(PURGE_DELAY, 0) }
        }
    }
}

#[cfg(all(test, feature = "mimalloc"))]
mod tests {
    use super::mimalloc::{PURGE_DELAY, PURGE_DELAY_DEFAULT};

    #[test]
    fn the_purge_delay_option_number_is_mimalloc_v3s() {
        // The test binary does not call `tune`: the option holds its built-in default, or what
        // the environment set.
        let expected = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(PURGE_DELAY_DEFAULT);
        // SAFETY: reads one integer option of the allocator.
        let value = unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        assert_eq!(
            value, expected,
            "option {PURGE_DELAY} is not mimalloc v3's purge_delay (default 1000 ms): check the \
             mi_option_t enum of the mimalloc version built"
        );
    }
}
