//! Where each table's copy stands, kept in ClickHouse next to the tables it
//! fills (`migration_progress`; in a cluster, on the shards like the
//! tables): per source file and table, the table's fingerprint, the last
//! rowid copied and the rows copied, newest version wins.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::MigrateError;
use super::source::Fingerprint;
use crate::store::clickhouse::{ClickHouse, ClickHouseError, STATEMENT_TIMEOUT};
use crate::store::now_micros;

/// The table's name.
pub(crate) const TABLE: &str = "migration_progress";

/// One version of a table's progress.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
struct ProgressRow {
    source: String,
    table_name: String,
    fingerprint: String,
    last_rowid: i64,
    rows_done: u64,
    finished: u8,
    version: u64,
}

/// What an earlier run recorded for a table whose fingerprint has not
/// changed since.
pub(super) struct Earlier {
    /// The last rowid it copied.
    pub last_rowid: i64,
    /// Rows it copied up to there.
    pub rows_done: u64,
    /// True when it copied the whole table.
    pub finished: bool,
}

/// The progress of one source file.
pub(super) struct Progress {
    ch: ClickHouse,
    source: String,
    earlier: HashMap<String, ProgressRow>,
    version: u64,
}

impl Progress {
    /// Creates the table if missing and reads what earlier runs from
    /// `source` recorded.
    pub async fn open(ch: &ClickHouse, source: &str) -> Result<Progress, MigrateError> {
        let classify = ch.failed("migration progress");
        let failed = |what: &'static str| {
            let classify = &classify;
            move |e| MigrateError::Progress {
                what,
                source: classify(e),
            }
        };
        let table = ch.target().qualified(TABLE);
        // On a cluster, sharded by source file: a run from any server of
        // it resumes where the last one stopped.
        for statement in ch.target().create_table(
            TABLE,
            "(`source` String, `table_name` String, \
             `fingerprint` String, `last_rowid` Int64, `rows_done` UInt64, \
             `finished` UInt8, `version` UInt64) \
             ENGINE = ReplacingMergeTree(`version`) ORDER BY (`source`, `table_name`)",
            "cityHash64(`source`)",
        ) {
            ch.client()
                .query(&statement)
                .execute()
                .await
                .map_err(failed("create"))?;
        }
        let rows: Vec<ProgressRow> = ch
            .client()
            .query(&format!(
                "SELECT ?fields FROM {table} FINAL WHERE source = ? \
                 ORDER BY version DESC LIMIT 1 BY table_name"
            ))
            .bind(source)
            .fetch_all()
            .await
            .map_err(failed("read"))?;
        let version = rows.iter().map(|r| r.version).max().unwrap_or_default();
        Ok(Progress {
            ch: ch.clone(),
            source: source.to_owned(),
            earlier: rows
                .into_iter()
                .map(|r| (r.table_name.clone(), r))
                .collect(),
            version,
        })
    }

    /// What an earlier run recorded for `table`, if its fingerprint then
    /// was `fingerprint`.
    pub fn earlier(&self, table: &str, fingerprint: &Fingerprint) -> Option<Earlier> {
        self.earlier
            .get(table)
            .filter(|r| r.fingerprint == fingerprint.text)
            .map(|r| Earlier {
                last_rowid: r.last_rowid,
                rows_done: r.rows_done,
                finished: r.finished != 0,
            })
    }

    /// Records that `table` is copied up to `last_rowid` (`rows_done` rows).
    pub async fn record(
        &mut self,
        table: &str,
        fingerprint: &Fingerprint,
        last_rowid: i64,
        rows_done: u64,
    ) -> Result<(), MigrateError> {
        self.write(table, fingerprint, (last_rowid, rows_done), false)
            .await
    }

    /// Records that all of `table` is copied.
    pub async fn finish(
        &mut self,
        table: &str,
        fingerprint: &Fingerprint,
    ) -> Result<(), MigrateError> {
        let end = (fingerprint.max_rowid, fingerprint.rows);
        self.write(table, fingerprint, end, true).await
    }

    async fn write(
        &mut self,
        table: &str,
        fingerprint: &Fingerprint,
        (last_rowid, rows_done): (i64, u64),
        finished: bool,
    ) -> Result<(), MigrateError> {
        // Each version newer than the last, whatever the clock does.
        self.version = (now_micros().max(0) as u64).max(self.version + 1);
        let row = ProgressRow {
            source: self.source.clone(),
            table_name: table.to_owned(),
            fingerprint: fingerprint.text.clone(),
            last_rowid,
            rows_done,
            finished: u8::from(finished),
            version: self.version,
        };
        insert(&self.ch, &row)
            .await
            .map_err(|source| MigrateError::Progress {
                what: "record",
                source,
            })
    }
}

async fn insert(ch: &ClickHouse, row: &ProgressRow) -> Result<(), ClickHouseError> {
    let failed = ch.failed("migration progress");
    let mut insert = ch
        .client()
        .insert::<ProgressRow>(TABLE)
        .await
        .map_err(&failed)?
        .with_timeouts(Some(STATEMENT_TIMEOUT), Some(STATEMENT_TIMEOUT));
    insert.write(row).await.map_err(&failed)?;
    insert.end().await.map_err(&failed)
}
