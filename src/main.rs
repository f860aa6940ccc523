//! The orderguard binary: every subcommand lives in `orderguard::cli`.

fn main() -> std::process::ExitCode {
    orderguard::cli::main()
}
