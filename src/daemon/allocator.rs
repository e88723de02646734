//! The allocator's settings for a long-running node.
//!
//! mimalloc commits its arenas eagerly and asks for transparent huge pages
//! on them, so an idle node was 57 MiB resident, 42 MiB of it huge pages
//! that were barely touched. With lazy arena commits memory is committed as
//! it is used: an idle node is 16 MiB, and after 5 s of single-row writes
//! from 16 clients it peaked at 67 MiB instead of 190, for about 6% fewer
//! writes per second (docs/performance.md).
//!
//! The option is set through mimalloc's API before the program's first
//! allocation reserves an arena (from an ELF initialiser: the Rust runtime
//! allocates before `main`). It must not re-execute the program to set
//! it through the environment: under qemu-user `/proc/self/exe` is qemu or
//! loses qemu's `-L` prefix (packaging/smoke-arm.sh broke that way).

use libmimalloc_sys::{mi_option_set, mi_option_t};

/// `mi_option_arena_eager_commit` in mimalloc.h's `mi_option_e` (v2 and
/// v3); libmimalloc-sys exports no constant for it. A unit test checks the
/// number against the option's documented default.
const ARENA_EAGER_COMMIT: mi_option_t = 4;
const ENV: &std::ffi::CStr = c"MIMALLOC_ARENA_EAGER_COMMIT";

/// Makes mimalloc commit arena memory as it is used, unless
/// `MIMALLOC_ARENA_EAGER_COMMIT` is set (then mimalloc has read it, and it
/// wins). Call it before the program's first allocation: an arena reserved
/// before it is committed eagerly. The Rust runtime allocates before
/// `main`, so the binary calls it from an ELF initialiser (main.rs). It
/// allocates nothing itself.
pub fn commit_memory_lazily() {
    // std::env::var_os would allocate; getenv does not.
    // SAFETY: a NUL-terminated name; nothing writes the environment yet.
    let set = unsafe { !libc::getenv(ENV.as_ptr()).is_null() };
    if !set {
        // SAFETY: mimalloc's option API; called before other threads exist.
        unsafe { mi_option_set(ARENA_EAGER_COMMIT, 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmimalloc_sys::mi_option_get;

    /// The arena commit option as mimalloc sees it (0: lazy).
    fn arena_eager_commit() -> std::ffi::c_long {
        // SAFETY: reads one option.
        unsafe { mi_option_get(ARENA_EAGER_COMMIT) }
    }

    fn set_in_environment() -> bool {
        std::env::var_os(ENV.to_str().unwrap()).is_some()
    }

    #[test]
    fn the_option_number_is_arena_eager_commit() {
        // Test binaries run with the system allocator, so mimalloc's
        // options are untouched here: arena_eager_commit starts at its
        // documented default, 2 ("only where the OS overcommits"), which
        // no neighbouring option has.
        if !set_in_environment() {
            assert_eq!(arena_eager_commit(), 2);
        }
        commit_memory_lazily();
        if !set_in_environment() {
            assert_eq!(arena_eager_commit(), 0);
        }
    }
}
