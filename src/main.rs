//! The `ecs-jobwatch` binary: a thin shell over the library.

fn main() -> std::process::ExitCode {
    ecs_jobwatch::cli::main()
}
