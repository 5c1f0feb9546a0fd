//! ringbroker-bench.
fn main() {}
