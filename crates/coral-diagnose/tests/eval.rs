//! The evaluation suite (fast mode: simulated data straight into an
//! in-memory store). Fails below the targets: AC@1 ≥ 0.9 and AC@3 = 1.0 at
//! service level over all faults, no cause on any healthy control, and
//! every answer sound (trace ids exist, reproduce lines are valid commands,
//! claim numbers are in their evidence rows). Prints the table:
//! `cargo test -p coral-diagnose --test eval -- --nocapture`.

use coral_diagnose::sim::eval::run_suite;

#[test]
fn the_suite_meets_its_targets() {
    let (results, scores) = run_suite();
    println!("{}", scores.markdown());
    for r in &results {
        let wrong = r.case.scenario.fault.truth().is_some() && r.service_rank != Some(1);
        if wrong || !r.problems.is_empty() {
            println!("{}", r.summary());
        }
    }
    let f = &scores.faults;
    assert!(
        f.ac_service(1) >= 0.9,
        "AC@1 (service) {:.2} < 0.90",
        f.ac_service(1)
    );
    assert!(
        f.ac_service(3) >= 1.0,
        "AC@3 (service) {:.2} < 1.00",
        f.ac_service(3)
    );
    assert!(
        f.ac_operation(1) >= 0.9,
        "AC@1 (operation) {:.2} < 0.90",
        f.ac_operation(1)
    );
    assert_eq!(
        scores.controls.with_causes, 0,
        "a healthy control got a cause"
    );
    let unsound: Vec<_> = results.iter().filter(|r| !r.problems.is_empty()).collect();
    assert!(
        unsound.is_empty(),
        "{} answers cite evidence that does not hold",
        unsound.len()
    );
}
