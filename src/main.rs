//! The orderguard binary: every subcommand lives in `orderguard::cli`.

/// mimalloc: the engine and the adapters allocate many short strings per request; the system
/// allocator's malloc/free were a quarter of the engine's instructions (callgrind, see README).
#[global_allocator]
static ALLOCATOR: orderguard::alloc::Mimalloc = orderguard::alloc::Mimalloc;

fn main() -> std::process::ExitCode {
    orderguard::cli::main()
}
