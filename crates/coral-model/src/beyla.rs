//! [`BeylaRows`]: a batch of Beyla rows (HTTP, RPC and SQL histograms and
//! trace spans) as the agent stores them and the colony receives them, all
//! numbered from the agent's Beyla `seq_id` sequence.

use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, BeylaTraceSpan};

/// Beyla rows of one write (agent) or one page (colony).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct BeylaRows {
    /// HTTP histograms.
    pub http: Vec<BeylaHttpMetric>,
    /// RPC histograms.
    pub grpc: Vec<BeylaGrpcMetric>,
    /// Database and messaging histograms.
    pub sql: Vec<BeylaSqlMetric>,
    /// Trace spans.
    pub spans: Vec<BeylaTraceSpan>,
}

impl BeylaRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.http.len() + self.grpc.len() + self.sql.len() + self.spans.len()
    }

    /// True without rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves `other`'s rows into `self`.
    pub fn append(&mut self, other: &mut BeylaRows) {
        self.http.append(&mut other.http);
        self.grpc.append(&mut other.grpc);
        self.sql.append(&mut other.sql);
        self.spans.append(&mut other.spans);
    }

    /// Every row's seq_id.
    pub fn seq_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.http
            .iter()
            .map(|m| m.seq_id)
            .chain(self.grpc.iter().map(|m| m.seq_id))
            .chain(self.sql.iter().map(|m| m.seq_id))
            .chain(self.spans.iter().map(|s| s.seq_id))
    }

    /// Keeps the rows whose seq_id satisfies `keep`.
    pub fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        self.http.retain(|m| keep(m.seq_id));
        self.grpc.retain(|m| keep(m.seq_id));
        self.sql.retain(|m| keep(m.seq_id));
        self.spans.retain(|s| keep(s.seq_id));
    }
}
