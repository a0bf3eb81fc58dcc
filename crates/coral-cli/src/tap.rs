//! `coral tap <service>`: a live view of a service's RED per operation (from
//! the OTLP buckets' operation breakdown) and per route (from Beyla's
//! histograms) and its slowest recent traces from both sources, refreshed
//! every `--interval` until `--duration` passes or Ctrl-C, then saved as JSON
//! under `./tap-sessions/tap-<timestamp>/`.
//!
//! Both kinds of rows are one-minute aggregates written when the minute
//! closes, so the view covers the last `--window` (default 5 minutes) and
//! says how fresh its newest minute is; spans arrive on the next poll.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{ListTracesRequest, QueryBeylaRequest, QueryOperationsRequest};
use serde_json::json;

use crate::beyla_views::{self, Family, HttpFilter};
use crate::client::ColonyArgs;
use crate::output;

/// Options of `coral tap`.
#[derive(Args, Debug)]
pub struct TapArgs {
    /// Service name (as Beyla reports it).
    pub service: String,
    /// How long to watch (e.g. 60s, 5m).
    #[arg(long, default_value = "60s")]
    duration: String,
    /// Time between refreshes.
    #[arg(long, default_value = "5s")]
    interval: String,
    /// How far back each refresh looks.
    #[arg(long, default_value = "5m")]
    window: String,
    /// Show Beyla HTTP metrics per route (default: every view).
    #[arg(long)]
    beyla_http: bool,
    /// Show OTLP RED per operation (default: every view).
    #[arg(long)]
    otel: bool,
    /// Show recent slow traces from every source (default: every view).
    #[arg(long, alias = "beyla-traces")]
    traces: bool,
    /// Where sessions are saved.
    #[arg(long, default_value = "tap-sessions", value_name = "DIR")]
    out_dir: PathBuf,
    #[command(flatten)]
    colony: ColonyArgs,
}

fn duration(flag: &str, v: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(v)
        .with_context(|| format!("{flag} {v:?} is not a duration; use e.g. 5s, 60s or 5m"))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

/// One refresh: what was shown, as JSON, and as text.
struct Snapshot {
    json: serde_json::Value,
    text: String,
}

async fn take(
    args: &TapArgs,
    client: &mut crate::client::Client,
    window: Duration,
    elapsed: Duration,
    total: Duration,
) -> anyhow::Result<Snapshot> {
    let every = !(args.beyla_http || args.otel || args.traces);
    let (show_http, show_ops, show_traces) = (
        every || args.beyla_http,
        every || args.otel,
        every || args.traces,
    );
    let now = unix_now();
    let from = now - window.as_secs() as i64;
    let response = client
        .query_beyla(QueryBeylaRequest {
            service_names: vec![args.service.clone()],
            metric_types: vec![if show_http { "http" } else { "none" }.into()],
            start_time_unix_ms: from * 1000,
            end_time_unix_ms: (now + 60) * 1000,
            ..Default::default()
        })
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
    let mut text = format!(
        "coral tap {} — {} ({}s of {}s)\n",
        args.service,
        output::rfc3339(now),
        elapsed.as_secs(),
        total.as_secs()
    );
    let mut doc = serde_json::Map::new();
    doc.insert("at".into(), json!(output::rfc3339(now)));
    let ops = if show_ops {
        client
            .query_operations(QueryOperationsRequest {
                service_name: args.service.clone(),
                from_unix: from,
                to_unix: now + 60,
                ..Default::default()
            })
            .await
            .map_err(|s| args.colony.explain(s))?
            .into_inner()
    } else {
        Default::default()
    };
    // With every view on, a source with no data in the window stays quiet
    // when the other has some (an SDK-only service shows no Beyla section).
    let quiet_http = every && response.http_metrics.is_empty() && !ops.rows.is_empty();
    let quiet_ops = every && ops.rows.is_empty() && !response.http_metrics.is_empty();
    if show_ops && !quiet_ops {
        let minutes: std::collections::BTreeSet<i64> =
            ops.rows.iter().map(|r| r.bucket_time).collect();
        let seconds = (minutes.len().max(1) * 60) as f64;
        match minutes.last() {
            Some(&last) => text.push_str(&format!(
                "\nOperations, OTLP (last {} min with data, newest minute {} UTC; minutes are written when they close):\n",
                minutes.len(),
                &output::minute(last)[11..]
            )),
            None => text.push_str(&format!(
                "\nOperations, OTLP: no closed minute in the last {} yet (minutes are written once they close, plus the agent's flush_grace).\n",
                args.window
            )),
        }
        let mut rows = Vec::new();
        for o in &ops.totals {
            let rps = o.total_spans as f64 / seconds;
            let rate = output::rate(o.error_count, o.total_spans);
            let errors = output::percent(rate);
            text.push_str(&format!(
                "  {} [{}]: {rps:.1} req/s, P95={}, max={}, {} errors\n",
                o.operation,
                o.span_kind,
                output::ms(o.p95_ms),
                output::ms(o.max_ms),
                output::paint_if(rate >= 0.05, output::RED, &errors)
            ));
            rows.push(json!({
                "operation": o.operation, "span_kind": o.span_kind, "requests": o.total_spans,
                "requests_per_second": rps, "errors": o.error_count, "error_rate": rate,
                "p95_ms": o.p95_ms, "max_ms": o.max_ms,
            }));
        }
        doc.insert("operations".into(), json!(rows));
    }
    if show_http && !quiet_http {
        let minutes: std::collections::BTreeSet<i64> =
            response.http_metrics.iter().map(|m| m.minute).collect();
        let filter = HttpFilter {
            kind: "server".into(),
            ..Default::default()
        };
        let (groups, _) = beyla_views::groups(&response, Family::Http, &filter);
        let seconds = (minutes.len().max(1) * 60) as f64;
        match minutes.last() {
            Some(&last) => text.push_str(&format!(
                "\nHTTP (last {} min with data, newest minute {} UTC; minutes are written when they close):\n",
                minutes.len(),
                &output::minute(last)[11..]
            )),
            None => text.push_str(&format!(
                "\nHTTP: no closed minute in the last {} yet (Beyla minutes are written when they close).\n",
                args.window
            )),
        }
        let mut routes = Vec::new();
        for g in &groups {
            let rps = g.requests as f64 / seconds;
            let rate = output::rate(g.errors as i64, g.requests as i64);
            let p95 = g.latency.quantile(0.95).map(|q| q.ms());
            let errors = output::percent(rate);
            text.push_str(&format!(
                "  {} {}: {rps:.1} req/s, P95={}, {} errors\n",
                g.key[0],
                g.key[1],
                p95.map_or("-".into(), output::ms),
                output::paint_if(rate >= 0.05, output::RED, &errors)
            ));
            routes.push(json!({
                "method": g.key[0], "route": g.key[1], "requests": g.requests,
                "requests_per_second": rps, "errors": g.errors, "error_rate": rate, "p95_ms": p95,
            }));
        }
        doc.insert("http".into(), json!(routes));
    }
    if show_traces {
        let list = client
            .list_traces(ListTracesRequest {
                service: args.service.clone(),
                start_time_unix_ms: from * 1000,
                end_time_unix_ms: (now + 60) * 1000,
                limit: 5,
                ..Default::default()
            })
            .await
            .map_err(|s| args.colony.explain(s))?
            .into_inner()
            .traces;
        text.push_str(&format!(
            "\nSlow traces (last {}): {}\n",
            args.window,
            list.len()
        ));
        let mut traces = Vec::new();
        for t in &list {
            text.push_str(&format!(
                "  Trace {}: {} ({}){}\n",
                t.trace_id,
                output::ms(t.duration_us as f64 / 1000.0),
                t.services.join(" → "),
                if t.error_count > 0 { " ERROR" } else { "" }
            ));
            traces.push(json!({
                "trace_id": t.trace_id, "duration_us": t.duration_us, "services": t.services,
                "span_count": t.span_count, "error_count": t.error_count,
            }));
        }
        doc.insert("traces".into(), json!(traces));
    }
    Ok(Snapshot {
        json: serde_json::Value::Object(doc),
        text,
    })
}

/// Runs `coral tap`.
pub async fn tap(args: TapArgs) -> anyhow::Result<()> {
    let total = duration("--duration", &args.duration)?;
    let every = duration("--interval", &args.interval)?.max(Duration::from_millis(200));
    let window = duration("--window", &args.window)?;
    let mut client = args.colony.client()?;
    let started = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(started)
        .to_string()
        .replace([':', 'T'], "-")
        .trim_end_matches('Z')
        .to_owned();
    let dir = args.out_dir.join(format!("tap-{stamp}"));
    let live = std::io::stdout().is_terminal();
    println!(
        "Tap session started for {} ({}; Ctrl-C stops early).",
        output::printable(&args.service, false),
        args.duration
    );
    let begin = tokio::time::Instant::now();
    let mut snapshots = Vec::new();
    let mut tick = tokio::time::interval(every);
    let mut interrupted = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => { interrupted = true; }
        }
        let elapsed = begin.elapsed();
        if interrupted || elapsed > total + every / 2 {
            break;
        }
        let snap = take(&args, &mut client, window, elapsed, total).await?;
        if live {
            // Redraw in place on a terminal; append when piped.
            print!("\x1b[2J\x1b[H{}", output::printable(&snap.text, true));
        } else {
            println!("{}", output::printable(&snap.text, true));
        }
        snapshots.push(snap.json);
        if elapsed >= total {
            break;
        }
    }
    std::fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {}: check permissions or pass --out-dir",
            dir.display()
        )
    })?;
    let session = json!({
        "service": args.service,
        "started_at": humantime::format_rfc3339_seconds(started).to_string(),
        "ended_at": humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        "duration": args.duration, "interval": args.interval, "window": args.window,
        "interrupted": interrupted,
        "snapshots": snapshots,
    });
    let path = dir.join("session.json");
    std::fs::write(&path, output::json(&session))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "Session {}. Data saved to: {}/",
        if interrupted { "stopped" } else { "completed" },
        dir.display()
    );
    Ok(())
}
