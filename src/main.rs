//! The `orchestrator` binary: everything lives in the library; see `cli`.

fn main() -> std::process::ExitCode {
    orchestrator::cli::main()
}
