//! Writing the Prometheus text exposition format (version 0.0.4): metric
//! families with `# HELP` and `# TYPE`, samples with escaped label values,
//! and histograms with the standard `le` layout.

use std::fmt::Write as _;

/// Upper bounds, in seconds, of every histogram Coral exposes: Prometheus'
/// default layout (`+Inf` is added when written).
pub const BUCKETS_SECONDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A Prometheus text document being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The kinds of metric family.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Monotonic (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// `_bucket`, `_sum` and `_count`.
    Histogram,
}

impl Exposition {
    /// Starts the family `name`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// The samples of one histogram series: `cumulative[i]` values at most
    /// [`BUCKETS_SECONDS`]`[i]`, `count` in all (the `+Inf` bucket), their
    /// `sum` in seconds.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        cumulative: &[u64],
        count: u64,
        sum: f64,
    ) {
        for (bound, n) in BUCKETS_SECONDS.iter().zip(cumulative) {
            let _ = write!(self.out, "{name}_bucket");
            write_labels(&mut self.out, labels, Some(&bound.to_string()));
            let _ = writeln!(self.out, " {n}");
        }
        let _ = write!(self.out, "{name}_bucket");
        write_labels(&mut self.out, labels, Some("+Inf"));
        let _ = writeln!(self.out, " {count}");
        let _ = write!(self.out, "{name}_sum");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {sum}");
        let _ = write!(self.out, "{name}_count");
        write_labels(&mut self.out, labels, None);
        let _ = writeln!(self.out, " {count}");
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        let _ = write!(out, "{name}=\"{}\"", escape_label(value));
    }
    out.push('}');
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Help texts escape `\` and newlines.
fn escape_help(help: &str) -> String {
    help.replace('\\', r"\\").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_histograms_end_with_inf_sum_and_count() {
        let mut e = Exposition::default();
        e.family("x_seconds", Kind::Histogram, "Latency.");
        e.histogram("x_seconds", &[("service", "a\"b\\c\nd")], &[1; 11], 3, 0.5);
        let text = e.finish();
        assert!(text.starts_with("# HELP x_seconds Latency.\n# TYPE x_seconds histogram\n"));
        assert!(text.contains("x_seconds_bucket{service=\"a\\\"b\\\\c\\nd\",le=\"0.005\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{service=\"a\\\"b\\\\c\\nd\",le=\"+Inf\"} 3\n"));
        assert!(text.contains("x_seconds_sum{service=\"a\\\"b\\\\c\\nd\"} 0.5\n"));
        assert!(text.contains("x_seconds_count{service=\"a\\\"b\\\\c\\nd\"} 3\n"));
    }
}
