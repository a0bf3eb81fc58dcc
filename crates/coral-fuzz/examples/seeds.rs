//! Writes the seeds of the targets whose inputs Coral itself produces: the
//! pages an agent sends the colony (`colony_page`: a `QueryTelemetry`
//! answer and an `IngestTelemetry` push of the simulated shop's buckets, and
//! a sketch) and the questions `coral ask` reads (`ask_question`: the
//! evaluation suite's and the docs').
//!
//! `cargo run -p coral-fuzz --example seeds -- fuzz/corpus` (run by
//! `fuzz/seed.sh`).

use std::path::PathBuf;

use coral_diagnose::sim::FaultKind;
use coral_model::{Bucket, BucketKey, SpanKind, Stats};
use coral_proto::agent::QueryTelemetryResponse;
use coral_proto::colony::IngestTelemetryRequest;
use prost::Message;

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let page_dir = out.join("colony_page");
    std::fs::create_dir_all(&page_dir)?;
    let mut buckets = Vec::new();
    for (i, (service, ops)) in [
        (
            "checkout",
            &[("POST /checkout", 120.0), ("GET /cart", 8.0)][..],
        ),
        ("card-validator", &[("POST /validate", 35.0)][..]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut bucket = Bucket::new(BucketKey {
            minute: 1_795_003_200,
            service: service.into(),
            kind: SpanKind::Server,
        });
        for (name, median) in ops {
            let mut stats = Stats::new();
            for k in 0..50u32 {
                let ms = median * (0.5 + f64::from(k) / 50.0);
                stats.record(ms, k % 17 == 0, "4bf92f3577b34da6a3ce929d0e0e4736");
            }
            bucket.stats.merge(&stats).expect("same accuracy");
            bucket.operations.push(((*name).into(), stats));
        }
        buckets.push(bucket.to_proto("agent-1", i as u64 + 1));
    }
    let page = QueryTelemetryResponse {
        buckets: buckets.clone(),
        max_seq_id: 2,
        session_id: "0f8e4a6c".into(),
        latest_seq_id: 2,
        ..Default::default()
    };
    std::fs::write(page_dir.join("query-telemetry.pb"), page.encode_to_vec())?;
    let push = IngestTelemetryRequest {
        agent_id: "agent-1".into(),
        buckets,
        ..Default::default()
    };
    std::fs::write(page_dir.join("ingest-telemetry.pb"), push.encode_to_vec())?;
    let mut stats = Stats::new();
    for ms in [0.0, 0.4, 3.0, 250.0, 12_000.0] {
        stats.record(ms, false, "");
    }
    std::fs::write(page_dir.join("sketch.bin"), stats.sketch.encode())?;

    let ask_dir = out.join("ask_question");
    std::fs::create_dir_all(&ask_dir)?;
    let mut questions: Vec<String> = FaultKind::ALL
        .iter()
        .flat_map(|f| (0..3).map(move |v| f.question("checkout", v)))
        .collect();
    questions.extend(
        [
            "what changed in payments since 10:00?",
            "which is the slowest endpoint of frontend in the last 30m?",
            "why was checkout failing at 14:23?",
            "what is wrong with checkout?",
        ]
        .map(str::to_owned),
    );
    questions.sort();
    questions.dedup();
    for (i, q) in questions.iter().enumerate() {
        std::fs::write(ask_dir.join(format!("question-{i:02}.txt")), q)?;
    }
    println!(
        "wrote 3 colony_page and {} ask_question seeds under {}",
        questions.len(),
        out.display()
    );
    Ok(())
}
