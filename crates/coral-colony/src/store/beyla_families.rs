//! How the colony's embedded store writes and reads each Beyla histogram
//! family, generated from the family's declaration
//! ([`coral_model::beyla_histogram_families`]): the series that key a
//! merged row, the counts that add up when parts merge, and the row read
//! back as the metric `QueryBeyla` returns.

use std::collections::HashMap;

use coral_proto::common::LatencyHistogram;
use duckdb::Row;
use duckdb::types::Value;
use prost::Message;

use super::ts_micros;

/// One Beyla histogram family in the colony's DuckDB store.
pub(crate) trait HistogramFamily: Sized {
    /// The family's declaration (its colony table is `FAMILY.name`).
    const FAMILY: &'static crate::catalogue::Table;
    /// The family in messages about a rejected row.
    const WHAT: &'static str;
    /// The columns that key a row: minute, agent, service, then the series.
    const KEY: &'static [&'static str];
    /// The family's own counts (summed when parts merge), comma-separated
    /// with a leading `, ` (empty when none).
    const COUNTS: &'static str;
    /// The columns [`HistogramFamily::read`] reads, in the table's order.
    const COLUMNS: &'static str;
    /// The series columns, comma-separated, in the table's order.
    const SERIES: &'static str;

    /// The key of this metric from `agent_id`, in [`HistogramFamily::KEY`]'s
    /// order.
    fn key(&self, agent_id: &str) -> Vec<Value>;
    /// Its own counts, in [`HistogramFamily::COUNTS`]' order.
    fn counts(&self) -> Vec<u64>;
    /// The metric of a row selected as [`HistogramFamily::COLUMNS`].
    fn read(row: &Row<'_>) -> Result<Self, duckdb::Error>;
    /// Its agent's seq_id.
    fn seq_id(&self) -> u64;
    /// Its histogram.
    fn latency(&self) -> Option<&LatencyHistogram>;
    /// Its attributes.
    fn attributes(&self) -> &HashMap<String, String>;
}

/// Column `index` of `row`, a histogram, decoded.
fn latency(row: &Row<'_>, index: usize) -> Result<Option<LatencyHistogram>, duckdb::Error> {
    let bytes: Vec<u8> = row.get(index)?;
    LatencyHistogram::decode(bytes.as_slice())
        .map(Some)
        .map_err(|e| {
            duckdb::Error::FromSqlConversionFailure(index, duckdb::types::Type::Blob, Box::new(e))
        })
}

macro_rules! histogram_family {
    (
        $(#[$doc:meta])*
        table: $table:ident,
        tables: ($colony:literal, $agent:literal),
        metric: $metric:ident,
        row: $row:ident,
        what: $what:literal,
        series: [$($series:ident: $sk:ident = $sf:ident),+ $(,)?],
        counts: [$($count:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl HistogramFamily for coral_proto::common::$metric {
            const FAMILY: &'static crate::catalogue::Table = &crate::catalogue::$table;
            const WHAT: &'static str = $what;
            const KEY: &'static [&'static str] =
                &["minute", "agent_id", "service_name", $(stringify!($series)),+];
            const COUNTS: &'static str = concat!($(", ", stringify!($count)),*);
            const COLUMNS: &'static str = concat!(
                "epoch(minute)::BIGINT AS minute, agent_id, service_name, ",
                $(coral_model::duckdb_select!($sk, stringify!($series)), ", ",)+
                $(coral_model::duckdb_select!($ck, stringify!($count)), ", ",)*
                "latency, attributes"
            );
            const SERIES: &'static str = concat!(
                stringify!($($series),+)
            );

            fn key(&self, agent_id: &str) -> Vec<Value> {
                vec![
                    ts_micros(self.minute * 1_000_000),
                    Value::Text(agent_id.to_owned()),
                    Value::Text(self.service_name.clone()),
                    $(coral_model::duckdb_value!($sk, self.$sf),)+
                ]
            }

            fn counts(&self) -> Vec<u64> {
                vec![$(self.$cf),*]
            }

            fn read(r: &Row<'_>) -> Result<Self, duckdb::Error> {
                let mut m = coral_proto::common::$metric {
                    minute: r.get(0)?,
                    agent_id: r.get(1)?,
                    service_name: r.get(2)?,
                    ..Default::default()
                };
                let mut column = 2;
                $(coral_model::duckdb_set!($sk, m.$sf, r, { column += 1; column });)+
                $(coral_model::duckdb_set!($ck, m.$cf, r, { column += 1; column });)*
                m.latency = latency(r, column + 1)?;
                m.attributes = coral_model::string_map_from_json(&r.get::<_, String>(column + 2)?);
                Ok(m)
            }

            fn seq_id(&self) -> u64 {
                self.seq_id
            }

            fn latency(&self) -> Option<&LatencyHistogram> {
                self.latency.as_ref()
            }

            fn attributes(&self) -> &HashMap<String, String> {
                &self.attributes
            }
        }
    };
}

coral_model::beyla_histogram_families!(histogram_family);
