//! SQL over the projected tables: one DataFusion `SessionContext`, read-only.
//!
//! Tables read the latest published [`Snapshot`] at scan time, so a query sees one consistent
//! state and never blocks the writer: publishing swaps an `Arc`. DDL, DML and other statements
//! are refused. This module also renders results as a table, CSV or JSON, and writes Parquet.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::projection::Snapshot;
use crate::projection::tables::{EVENTS_SCHEMA, TICKETS_SCHEMA};
use crate::recurring::view::ViewSettings;

/// Names of the tables registered in the SQL context.
pub const TABLES: &[&str] = &["tickets", "ticket_events"];

/// Errors of a query.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The SQL is not valid or refers to something that does not exist.
    #[error("{0}")]
    Invalid(String),
    /// The statement would change something; the SQL surface is read-only.
    #[error("only SELECT queries are allowed; {0}")]
    NotReadOnly(String),
    /// Execution failed.
    #[error("query failed: {0}")]
    Execution(String),
    /// The result could not be rendered or written.
    #[error("cannot write the result to {path}: {detail}")]
    Write {
        /// Destination.
        path: PathBuf,
        /// Cause.
        detail: String,
    },
}

fn classify(e: DataFusionError) -> QueryError {
    let text = e.to_string();
    match e {
        DataFusionError::Plan(_) | DataFusionError::SQL(..) | DataFusionError::SchemaError(..) => {
            QueryError::Invalid(text)
        }
        DataFusionError::NotImplemented(_) => QueryError::Invalid(text),
        _ if text.contains("not supported") || text.contains("DDL") || text.contains("DML") => {
            QueryError::NotReadOnly(text)
        }
        _ => QueryError::Execution(text),
    }
}

/// Selects one table's batches from a snapshot.
type PickBatches = fn(&Snapshot) -> &Vec<RecordBatch>;

/// An in-memory table of `batches`, spread round-robin over `partitions` partitions.
fn memory_scan(
    schema: SchemaRef,
    batches: impl IntoIterator<Item = RecordBatch>,
    partitions: usize,
) -> datafusion::error::Result<MemTable> {
    let n = partitions.max(1);
    let mut parts = vec![Vec::new(); n];
    for (i, b) in batches.into_iter().enumerate() {
        parts[i % n].push(b);
    }
    parts.retain(|p| !p.is_empty());
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    MemTable::try_new(schema, parts)
}

/// A table whose rows are those of the latest published snapshot.
struct SnapshotTable {
    schema: SchemaRef,
    source: Arc<ArcSwap<Snapshot>>,
    pick: PickBatches,
    partitions: usize,
}

impl fmt::Debug for SnapshotTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotTable").finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.load_full();
        let batches = (self.pick)(&snapshot).iter().cloned();
        memory_scan(self.schema.clone(), batches, self.partitions)?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// `sla_clocks`: the raw clock rows of the latest snapshot, valued at the time of the scan.
struct SlaClocksTable {
    source: Arc<ArcSwap<Snapshot>>,
    partitions: usize,
    /// Fixed valuation instant (`deskwatch sla --at`); the wall clock when `None`.
    at: Option<i64>,
}

impl fmt::Debug for SlaClocksTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlaClocksTable").finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for SlaClocksTable {
    fn schema(&self) -> SchemaRef {
        crate::sla::table::SCHEMA.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        use datafusion::logical_expr::TableProviderFilterPushDown::{Inexact, Unsupported};
        Ok(filters
            .iter()
            .map(|f| {
                if ticket_id_equals(f).is_some() {
                    Inexact
                } else {
                    Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.load_full();
        // `ticket_id = '…'` (a ticket page): value only that ticket's clocks.
        let only = filters.iter().find_map(ticket_id_equals);
        let now = self
            .at
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let mut batches = Vec::new();
        if let Some(rules) = &snapshot.sla_rules {
            for raw in snapshot.sla.iter().flatten() {
                let raw = match &only {
                    Some(id) => {
                        use datafusion::arrow::array::{AsArray, BooleanArray};
                        let ids = raw.column(0).as_string::<i32>();
                        let keep: BooleanArray =
                            ids.iter().map(|v| Some(v == Some(id.as_str()))).collect();
                        let filtered = datafusion::arrow::compute::filter_record_batch(raw, &keep)?;
                        if filtered.num_rows() == 0 {
                            continue;
                        }
                        filtered
                    }
                    None => raw.clone(),
                };
                batches.push(crate::sla::table::evaluate(&raw, rules, now));
            }
        }
        memory_scan(self.schema(), batches, self.partitions)?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// Which recurring-issue table.
#[derive(Debug, Clone, Copy)]
enum RecurringKind {
    /// `ticket_clusters`.
    Clusters,
    /// `recurring_issues`.
    Issues,
}

/// `ticket_clusters` and `recurring_issues`: computed from the latest snapshot at scan time,
/// under the configured view settings (the window ends at the newest ticket's creation).
struct RecurringTable {
    kind: RecurringKind,
    source: Arc<ArcSwap<Snapshot>>,
    settings: Arc<ArcSwap<ViewSettings>>,
    partitions: usize,
}

impl fmt::Debug for RecurringTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecurringTable")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl TableProvider for RecurringTable {
    fn schema(&self) -> SchemaRef {
        match self.kind {
            RecurringKind::Clusters => crate::recurring::view::CLUSTERS_SCHEMA.clone(),
            RecurringKind::Issues => crate::recurring::view::ISSUES_SCHEMA.clone(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.load_full();
        let settings = self.settings.load_full();
        let kind = self.kind;
        let batch = tokio::task::spawn_blocking(move || match kind {
            RecurringKind::Clusters => crate::recurring::view::clusters_batch(&snapshot, &settings),
            RecurringKind::Issues => crate::recurring::view::issues_batch(
                &crate::recurring::view::compute(&snapshot, &settings, None, &Default::default()),
            ),
        })
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
        memory_scan(self.schema(), [batch], self.partitions)?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// The ticket id of a `ticket_id = '…'` filter.
fn ticket_id_equals(e: &Expr) -> Option<String> {
    use datafusion::logical_expr::{BinaryExpr, Operator};
    use datafusion::scalar::ScalarValue;
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = e
    else {
        return None;
    };
    let (Expr::Column(c), Expr::Literal(v, _)) = (left.as_ref(), right.as_ref()) else {
        return None;
    };
    if c.name != "ticket_id" {
        return None;
    }
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The SQL engine over published snapshots.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    snapshot: Arc<ArcSwap<Snapshot>>,
    recurring: Arc<ArcSwap<ViewSettings>>,
}

impl fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// A context with `tickets`, `ticket_events` and `sla_clocks` registered, initially
    /// empty; `sla_clocks` is valued at the wall clock.
    pub fn new() -> Result<QueryEngine, QueryError> {
        QueryEngine::valued_at(None)
    }

    /// Like [`QueryEngine::new`], with `sla_clocks` valued at a fixed instant (ms) if given.
    pub fn valued_at(at: Option<i64>) -> Result<QueryEngine, QueryError> {
        let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config(config);
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        let tables: [(&str, SchemaRef, PickBatches); 2] = [
            ("tickets", TICKETS_SCHEMA.clone(), |s| &s.tickets),
            ("ticket_events", EVENTS_SCHEMA.clone(), |s| &s.events),
        ];
        for (name, schema, pick) in tables {
            ctx.register_table(
                name,
                Arc::new(SnapshotTable {
                    schema,
                    source: snapshot.clone(),
                    pick,
                    partitions,
                }),
            )
            .map_err(classify)?;
        }
        ctx.register_table(
            "sla_clocks",
            Arc::new(SlaClocksTable {
                source: snapshot.clone(),
                partitions,
                at,
            }),
        )
        .map_err(classify)?;
        let recurring = Arc::new(ArcSwap::from_pointee(ViewSettings::default()));
        for (name, kind) in [
            ("ticket_clusters", RecurringKind::Clusters),
            ("recurring_issues", RecurringKind::Issues),
        ] {
            ctx.register_table(
                name,
                Arc::new(RecurringTable {
                    kind,
                    source: snapshot.clone(),
                    settings: recurring.clone(),
                    partitions,
                }),
            )
            .map_err(classify)?;
        }
        // Views over the tables above (planning only: they read the snapshot when queried).
        for view in crate::staffing::workload::VIEWS {
            futures_executor::block_on(ctx.sql(view)).map_err(classify)?;
        }
        Ok(QueryEngine {
            ctx,
            snapshot,
            recurring,
        })
    }

    /// Sets how `recurring_issues` and `ticket_clusters` are computed.
    pub fn set_recurring(&self, settings: ViewSettings) {
        self.recurring.store(Arc::new(settings));
    }

    /// How `recurring_issues` and `ticket_clusters` are computed.
    pub fn recurring(&self) -> Arc<ViewSettings> {
        self.recurring.load_full()
    }

    /// Makes `snapshot` the state that queries see from now on.
    pub fn publish(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    /// The snapshot queries currently see.
    pub fn current(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Runs one read-only SQL statement.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = match self.ctx.sql_with_options(sql, options).await {
            Ok(df) => df,
            Err(e) => {
                let text = e.to_string();
                if text.contains("not supported") {
                    return Err(QueryError::NotReadOnly(text));
                }
                return Err(classify(e));
            }
        };
        df.collect().await.map_err(classify)
    }
}

impl QueryEngine {
    /// Rows of `table` matching `filter`, optionally sorted by one column (no SQL text built).
    pub async fn filtered(
        &self,
        table: &str,
        filter: Expr,
        order_by: Option<&str>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut df = self
            .ctx
            .table(table)
            .await
            .map_err(classify)?
            .filter(filter)
            .map_err(classify)?;
        if let Some(c) = order_by {
            df = df
                .sort(vec![datafusion::prelude::col(c).sort(true, false)])
                .map_err(classify)?;
        }
        df.collect().await.map_err(classify)
    }
}

impl QueryEngine {
    /// Rows of `table` matching `filter`, sorted by one column, at most `limit`.
    pub async fn filtered_sorted(
        &self,
        table: &str,
        filter: Expr,
        order_by: &str,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        self.ctx
            .table(table)
            .await
            .map_err(classify)?
            .filter(filter)
            .map_err(classify)?
            .sort(vec![
                datafusion::prelude::col(order_by).sort(ascending, false),
                datafusion::prelude::col("ticket_id").sort(true, false),
            ])
            .map_err(classify)?
            .limit(0, Some(limit))
            .map_err(classify)?
            .collect()
            .await
            .map_err(classify)
    }
}

/// How to print query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text table.
    Table,
    /// CSV with a header row.
    Csv,
    /// A JSON array of objects.
    Json,
}

/// Renders batches in `format`.
pub fn render(batches: &[RecordBatch], format: OutputFormat) -> Result<String, QueryError> {
    let err = |e: datafusion::arrow::error::ArrowError| QueryError::Write {
        path: PathBuf::from("-"),
        detail: e.to_string(),
    };
    match format {
        OutputFormat::Table => Ok(
            datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .map_err(err)?
                .to_string(),
        ),
        OutputFormat::Csv => {
            let mut out = Vec::new();
            {
                let mut w = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                for b in batches {
                    w.write(b).map_err(err)?;
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        }
        OutputFormat::Json => Ok(serde_json::to_string_pretty(&to_json_rows(batches)?)
            .unwrap_or_else(|_| "[]".to_string())),
    }
}

/// Batches as JSON rows (objects keyed by column name).
pub fn to_json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut out = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut out);
        for b in batches {
            w.write(b).map_err(|e| QueryError::Write {
                path: PathBuf::from("-"),
                detail: e.to_string(),
            })?;
        }
        w.finish().map_err(|e| QueryError::Write {
            path: PathBuf::from("-"),
            detail: e.to_string(),
        })?;
    }
    if out.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&out).map_err(|e| QueryError::Write {
        path: PathBuf::from("-"),
        detail: e.to_string(),
    })
}

/// Writes every table of `snapshot` as `<dir>/<table>.parquet`; returns (table, rows) pairs.
pub fn export_parquet(snapshot: &Snapshot, dir: &Path) -> Result<Vec<(String, usize)>, QueryError> {
    use datafusion::parquet::arrow::ArrowWriter;
    std::fs::create_dir_all(dir).map_err(|e| QueryError::Write {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut written = Vec::new();
    for (name, schema, batches) in [
        ("tickets", TICKETS_SCHEMA.clone(), &snapshot.tickets),
        ("ticket_events", EVENTS_SCHEMA.clone(), &snapshot.events),
    ] {
        let path = dir.join(format!("{name}.parquet"));
        let werr = |detail: String| QueryError::Write {
            path: path.clone(),
            detail,
        };
        let file = std::fs::File::create(&path).map_err(|e| werr(e.to_string()))?;
        let mut writer =
            ArrowWriter::try_new(file, schema, None).map_err(|e| werr(e.to_string()))?;
        let mut rows = 0;
        for b in batches {
            rows += b.num_rows();
            writer.write(b).map_err(|e| werr(e.to_string()))?;
        }
        writer.close().map_err(|e| werr(e.to_string()))?;
        written.push((name.to_string(), rows));
    }
    Ok(written)
}
