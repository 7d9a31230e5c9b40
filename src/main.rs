//! The `mcwan` binary: everything lives in the library.

#![forbid(unsafe_code)]

/// Rendering allocates and frees millions of small strings and maps across threads;
/// mimalloc does that with far fewer instructions than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    mcwan::run()
}
