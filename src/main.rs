//! The `intelmq-bridge` command; everything it does lives in the library.

/// mimalloc instead of the system allocator: the codecs build and drop
/// many small strings and maps per event, and glibc's malloc and free took
/// a third of all instructions (callgrind, intelmq -> idea).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    intelmq_bridge::cli::main()
}
