//! Runs one case of the evaluation suite and prints the answer as
//! `coral ask` would: `cargo run -p coral-diagnose --example case -- <n> [json]`
//! (`n` indexes `sim::eval::suite()`).

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(0);
    let cases = coral_diagnose::sim::eval::suite();
    let Some(case) = cases.get(n) else {
        eprintln!("there are {} cases", cases.len());
        std::process::exit(2);
    };
    let r = coral_diagnose::sim::eval::run_case(case);
    println!("# {:?}, question: {}\n", case.scenario, case.question);
    if args.iter().any(|a| a == "json") {
        println!("{}", coral_diagnose::render_json(&r.diagnosis));
    } else {
        print!("{}", coral_diagnose::render_text(&r.diagnosis));
    }
    for p in &r.problems {
        println!("PROBLEM: {p}");
    }
}
