//! The `intelmq-bridge` command; everything it does lives in the library.

fn main() -> std::process::ExitCode {
    intelmq_bridge::cli::main()
}
