fn main() -> std::process::ExitCode {
    archgate::cli::main()
}
