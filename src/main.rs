//! The `foreman` binary: parse the command line and run. Everything lives in the library.

fn main() -> std::process::ExitCode {
    foreman::cli::main()
}
