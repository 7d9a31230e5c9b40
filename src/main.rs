//! The `mcwan` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    mcwan::run()
}
