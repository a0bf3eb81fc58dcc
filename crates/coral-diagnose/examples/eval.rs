//! Prints the evaluation suite's table (markdown) and each case's outcome:
//! `cargo run -p coral-diagnose --example eval [--release] [-- -v]`.

fn main() {
    let verbose = std::env::args().any(|a| a == "-v");
    let (results, scores) = coral_diagnose::sim::eval::run_suite();
    if verbose {
        for r in &results {
            let s = &r.case.scenario;
            println!(
                "{:<24} m={:<6} seed={:<6} {:<14} svc@{:?} op@{:?} {:?} {}",
                s.fault.name(),
                s.magnitude,
                s.seed,
                r.verdict.as_str(),
                r.service_rank,
                r.operation_rank,
                r.causes,
                if r.problems.is_empty() {
                    String::new()
                } else {
                    format!("PROBLEMS {:?}", r.problems)
                }
            );
        }
        println!();
    }
    print!("{}", scores.markdown());
}
