//! Ctrl-C sets the flag the training loop polls instead of killing the process. This file
//! holds a single test because it sends SIGINT to its own process: the handler is process-wide
//! and other tests must not be running beside it.

use std::time::{Duration, Instant};

use sim::record::Interrupt;

#[test]
fn ctrl_c_sets_the_flag_the_loop_polls() {
    let local = Interrupt::new();
    assert!(!local.requested());
    local.request();
    assert!(local.requested());
    local.clear();
    assert!(!local.requested());

    let flag = Interrupt::install().expect("handler installs");
    let again = Interrupt::install().expect("a second install shares the handler");
    assert!(!flag.requested());
    // `kill -INT <this process>`: with the handler installed the process survives it.
    let status =
        std::process::Command::new("kill").args(["-INT", &std::process::id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let start = Instant::now();
    while !again.requested() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(flag.requested() && again.requested(), "the handler set the shared flag");
}
