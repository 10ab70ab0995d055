//! The `ecs-jobwatch` binary: a thin shell over the library.
//!
//! Its allocator is mimalloc: with 100,000 jobs, glibc's heap kept the
//! pages that start-up's temporary records and watch entries had used,
//! pinned by the few long-lived allocations between them (job ids), and
//! malloc and free were a sixth of the CPU time of a poll; see
//! `docs/benchmarks.md`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    ecs_jobwatch::cli::main()
}
