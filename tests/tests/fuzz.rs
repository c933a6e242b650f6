//! The coverage-guided fuzz target (`tests/fuzz`: libFuzzer over the whole pipeline
//! before a statement runs) built and run for a bounded time from its committed seeds:
//! `CXGRAPH_FUZZ_SECONDS` (default 60). It fails on anything libFuzzer finds (a panic,
//! a stack overflow on a quarter of a worker's stack, a 500, internals in an answer,
//! an answer over 4 MiB, an input over its 10 s budget) and prints the input that did it.
//!
//! Its own test binary: the instrumented build is a cargo run of its own workspace,
//! after this one's build is done.

#[test]
fn the_preflight_fuzz_target_finds_nothing_in_its_run() {
    let seconds = std::env::var("CXGRAPH_FUZZ_SECONDS").unwrap_or_else(|_| "60".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/run.sh");
    let mut run = std::process::Command::new("bash");
    run.arg(script).arg(&seconds);
    cxgraph_tests::process::without_package_env(&mut run);
    let status = run.status().expect("the fuzz script runs");
    assert!(status.success(), "libFuzzer found something in {seconds} s (its output above names the input)");
}
