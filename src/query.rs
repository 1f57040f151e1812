//! SQL over the projected tables: one DataFusion `SessionContext`, read-only.
//!
//! Tables read the latest published [`Snapshot`] at scan time, so a query sees one consistent
//! state and never blocks the writer: publishing swaps an `Arc`. DDL, DML and other statements
//! are refused. This module also renders results as a table, CSV or JSON, and writes Parquet.

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::{Session, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::execution::context::{SQLOptions, SessionConfig, SessionContext};
use datafusion::execution::memory_pool::{
    FairSpillPool, MemoryConsumer, MemoryPool, MemoryReservation, TrackConsumersPool,
};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::ExecutionPlan;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod events_table;
mod guard;
pub mod sla_listing;
pub mod workload;

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
    /// The query needs more memory (or spill space) than `[query] memory-limit` allows.
    #[error(
        "the query needs more memory than the queries of this service may share ([query] memory-limit); narrow it with WHERE, LIMIT or fewer columns: {0}"
    )]
    ResourcesExhausted(String),
    /// The query ran longer than `[query] timeout-seconds` and was cancelled.
    #[error(
        "the query ran longer than {0} s ([query] timeout-seconds) and was cancelled; narrow it with WHERE or LIMIT"
    )]
    Timeout(u64),
    /// Every query slot stayed taken for the whole timeout.
    #[error(
        "{0} queries are running ([query] max-concurrent) and none finished in time; retry shortly"
    )]
    Busy(usize),
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
    if matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)) {
        return QueryError::ResourcesExhausted(text);
    }
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
        let stored = (self.pick)(&snapshot);
        memory_scan(self.schema.clone(), stored.iter().cloned(), self.partitions)?
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
        crate::projection::sla_table::SCHEMA.clone()
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
                if ticket_id_equals(f).is_some() || not_stopped(f) {
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
        if projection.is_some_and(|p| p.is_empty()) {
            // `count(*)`: the rows are counted, not valued.
            let counts = snapshot
                .sla
                .iter()
                .flatten()
                .map(crate::projection::sla_table::row_counts);
            return memory_scan(Arc::new(Schema::empty()), counts, self.partitions)?
                .scan(state, None, filters, limit)
                .await;
        }
        // `ticket_id = '…'` (a ticket page): value only that ticket's clocks.
        let only = filters.iter().find_map(ticket_id_equals);
        // `stopped_at is null` (the web page's open clocks): value only clocks not stopped.
        let unstopped = filters.iter().any(not_stopped);
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
                let raw = if unstopped {
                    crate::projection::sla_table::select(
                        &raw,
                        crate::projection::sla_table::is_not_stopped,
                    )
                } else {
                    raw
                };
                if raw.num_rows() > 0 {
                    batches.push(crate::projection::sla_table::evaluate(&raw, rules, now));
                }
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
/// Whether `e` is `stopped_at IS NULL` (the clocks not stopped: open, or cancelled open).
fn not_stopped(e: &Expr) -> bool {
    matches!(e, Expr::IsNull(inner) if matches!(inner.as_ref(), Expr::Column(c) if c.name == "stopped_at"))
}

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

/// Most operators one statement may have. The planner recurses once per operator of a chain
/// (`1 + 1 + …`, `a = 1 or a = 2 or …`), so a long enough chain would overflow the stack and
/// abort the process; parentheses and nested calls are already bounded by the SQL parser's
/// recursion limit (50). IN lists are not operators and may be long.
pub const MAX_OPERATORS: usize = 1000;

/// Refuses a statement with more than [`MAX_OPERATORS`] operators.
fn check_operators(sql: &str) -> Result<(), QueryError> {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::keywords::Keyword;
    use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(()); // the parser reports it
    };
    let operators = tokens
        .iter()
        .filter(|t| match t {
            Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
            Token::Whitespace(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::EOF
            | Token::Number(..)
            | Token::Char(_)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::Placeholder(_) => false,
            _ => true,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(QueryError::Invalid(format!(
            "the statement has {operators} operators; at most {MAX_OPERATORS} are planned (use IN (…) for long lists of values)"
        )));
    }
    Ok(())
}

/// A size in bytes, or `auto`: `"auto"`, `"512MiB"`, `"4GiB"`, `"100MB"` or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteSize {
    /// Chosen from the memory this process may use.
    Auto,
    /// This many bytes.
    Bytes(u64),
}

impl std::str::FromStr for ByteSize {
    type Err = crate::base::ParseError;

    fn from_str(text: &str) -> Result<ByteSize, crate::base::ParseError> {
        use crate::base::ParseError;
        let form = |expected| ParseError::Form {
            text: text.to_string(),
            expected,
        };
        let t = text.trim();
        if t.eq_ignore_ascii_case("auto") {
            return Ok(ByteSize::Auto);
        }
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| form("a size (e.g. \"auto\", \"512MiB\", \"4GiB\")"))?;
        let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            _ => {
                return Err(form(
                    "a size with a unit of B, KiB, MiB, GiB, TiB, KB, MB, GB or TB",
                ));
            }
        };
        n.checked_mul(scale)
            .map(ByteSize::Bytes)
            .ok_or_else(|| ParseError::Range {
                text: text.to_string(),
                problem: "is too large",
            })
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ByteSize, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize::Bytes(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// `[query]`: what SQL may use, for `POST /v1/query` and the views built on SQL.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct QueryConfig {
    /// Memory all running queries share (joins, sorts, aggregations, results); `auto` is a
    /// quarter of what this process may use (the machine's memory, a cgroup limit or an
    /// address-space limit, whichever is smallest). A query that needs more spills to disk
    /// where DataFusion can (sorts, grouped aggregations) and is refused otherwise.
    pub memory_limit: ByteSize,
    /// Disk that spilling queries may use in the system's temporary directory; 0: no spilling.
    pub spill_limit: ByteSize,
    /// Rows one `POST /v1/query` answer holds at most; the answer says when it was cut.
    pub max_rows: usize,
    /// Queries (and cost, staffing and recurring views) that run at once; others wait.
    pub max_concurrent: usize,
    /// A query running (or waiting) longer is cancelled and answered 408.
    pub timeout_seconds: u64,
}

impl Default for QueryConfig {
    fn default() -> QueryConfig {
        QueryConfig {
            memory_limit: ByteSize::Auto,
            spill_limit: ByteSize::Bytes(4 << 30),
            max_rows: 100_000,
            max_concurrent: 4,
            timeout_seconds: 25,
        }
    }
}

impl QueryConfig {
    /// Checks the values; the key at fault and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("query.{k}"), m.to_string()));
        if let ByteSize::Bytes(n) = self.memory_limit
            && n < 16 << 20
        {
            return bad("memory-limit", "must be at least 16MiB");
        }
        if self.max_rows == 0 {
            return bad("max-rows", "must be at least 1");
        }
        if self.max_concurrent == 0 || self.max_concurrent > 1024 {
            return bad("max-concurrent", "must be 1 to 1024");
        }
        if self.timeout_seconds == 0 {
            return bad("timeout-seconds", "must be at least 1");
        }
        Ok(())
    }

    /// The memory limit in bytes (`auto` resolved).
    pub fn memory_limit_bytes(&self) -> u64 {
        match self.memory_limit {
            ByteSize::Bytes(n) => n,
            ByteSize::Auto => (available_memory() / 4).max(64 << 20),
        }
    }

    /// The spill limit in bytes (`auto`: twice the memory limit).
    pub fn spill_limit_bytes(&self) -> u64 {
        match self.spill_limit {
            ByteSize::Bytes(n) => n,
            ByteSize::Auto => self.memory_limit_bytes().saturating_mul(2),
        }
    }
}

/// The memory this process may use: the smallest of the machine's memory, the cgroup's limit
/// and the address-space limit (Linux; 4 GiB where none can be read).
pub fn available_memory() -> u64 {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let mut limits = Vec::new();
    if let Some(info) = read("/proc/meminfo")
        && let Some(kb) = info
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        limits.push(kb * 1024);
    }
    for p in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Some(v) = read(p).and_then(|v| v.trim().parse::<u64>().ok()) {
            limits.push(v);
        }
    }
    if let Some(v) = read("/proc/self/limits").and_then(|l| {
        l.lines()
            .find(|l| l.starts_with("Max address space"))
            .and_then(|l| {
                l.split_whitespace()
                    .nth(3)
                    .and_then(|v| v.parse::<u64>().ok())
            })
    }) {
        limits.push(v);
    }
    limits.into_iter().min().unwrap_or(4 << 30)
}

/// One query's share of the shared pool: at most `cap` bytes, so that however much one query
/// asks for, the others (a dashboard's small queries) still find memory.
#[derive(Debug)]
struct QueryPool {
    shared: Arc<dyn MemoryPool>,
    cap: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query share of at most {} bytes of {}",
            self.cap, self.shared
        )
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "query-share"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.shared.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.shared.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.used
            .fetch_add(additional, std::sync::atomic::Ordering::Relaxed);
        self.shared.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.used
            .fetch_sub(shrink, std::sync::atomic::Ordering::Relaxed);
        self.shared.shrink(reservation, shrink);
    }

    fn try_grow(
        &self,
        reservation: &MemoryReservation,
        additional: usize,
    ) -> datafusion::error::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let used = self.used.load(Relaxed);
        if used.saturating_add(additional) > self.cap {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{} needs {additional} more bytes; this query holds {used} of the {} one query may use (3/4 of [query] memory-limit)",
                reservation.consumer().name(),
                self.cap
            )));
        }
        self.shared.try_grow(reservation, additional)?;
        self.used.fetch_add(additional, Relaxed);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn memory_limit(&self) -> datafusion::execution::memory_pool::MemoryLimit {
        datafusion::execution::memory_pool::MemoryLimit::Finite(self.cap)
    }
}

/// What the engine enforces on every bounded query.
#[derive(Debug)]
struct Limits {
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    max_rows: usize,
    timeout: Duration,
    pool: Arc<dyn MemoryPool>,
    memory_limit: u64,
}

/// A query slot, held while a bounded piece of work runs.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

/// The answer of a bounded query: at most `max-rows` rows, held once, in Arrow.
#[derive(Debug)]
pub struct Bounded {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
    /// Rows in `batches`.
    pub rows: usize,
    /// More rows existed than `max-rows`; they were not computed further.
    pub truncated: bool,
    /// The result's memory, counted in the query memory pool until the answer is sent.
    _reservation: MemoryReservation,
}

/// The SQL engine over published snapshots.
#[derive(Clone)]
pub struct QueryEngine {
    ctx: SessionContext,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Fixed instant SLA clocks are valued at (`deskwatch sla --at`); the wall clock if `None`.
    sla_at: Option<i64>,
    recurring: Arc<ArcSwap<ViewSettings>>,
    limits: Arc<Limits>,
}

impl fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// A context with `tickets`, `ticket_events` and `sla_clocks` registered, initially
    /// empty; `sla_clocks` is valued at the wall clock. Default `[query]` limits.
    pub fn new() -> Result<QueryEngine, QueryError> {
        QueryEngine::valued_at(None)
    }

    /// Like [`QueryEngine::new`], with `sla_clocks` valued at a fixed instant (ms) if given.
    pub fn valued_at(at: Option<i64>) -> Result<QueryEngine, QueryError> {
        QueryEngine::with_limits(at, &QueryConfig::default())
    }

    /// Like [`QueryEngine::valued_at`], under the `[query]` limits of `limits`.
    pub fn with_limits(at: Option<i64>, limits: &QueryConfig) -> Result<QueryEngine, QueryError> {
        let partitions = std::thread::available_parallelism().map_or(2, |n| n.get());
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_information_schema(true);
        let memory_limit = limits.memory_limit_bytes();
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            FairSpillPool::new(usize::try_from(memory_limit).unwrap_or(usize::MAX)),
            NonZeroUsize::MIN.saturating_add(2),
        ));
        let mut runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(pool.clone())
            .with_max_temp_directory_size(limits.spill_limit_bytes());
        if limits.spill_limit_bytes() == 0 {
            runtime = runtime.with_disk_manager_builder(
                datafusion::execution::disk_manager::DiskManagerBuilder::default()
                    .with_mode(datafusion::execution::disk_manager::DiskManagerMode::Disabled),
            );
        }
        let runtime = runtime.build_arc().map_err(classify)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        guard::install(&ctx, &pool);
        let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot::default()));
        ctx.register_table(
            "tickets",
            Arc::new(SnapshotTable {
                schema: TICKETS_SCHEMA.clone(),
                source: snapshot.clone(),
                pick: |s| &s.tickets,
                partitions,
            }),
        )
        .map_err(classify)?;
        ctx.register_table(
            "ticket_events",
            Arc::new(events_table::EventsTable::new(snapshot.clone(), partitions)),
        )
        .map_err(classify)?;
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
        for view in workload::VIEWS {
            futures_executor::block_on(ctx.sql(view)).map_err(classify)?;
        }
        Ok(QueryEngine {
            ctx,
            snapshot,
            sla_at: at,
            recurring,
            limits: Arc::new(Limits {
                slots: Arc::new(Semaphore::new(limits.max_concurrent)),
                max_concurrent: limits.max_concurrent,
                max_rows: limits.max_rows,
                timeout: Duration::from_secs(limits.timeout_seconds),
                pool,
                memory_limit,
            }),
        })
    }

    /// The memory all queries share, in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.limits.memory_limit
    }

    /// Waits for a query slot, at most the query timeout.
    pub async fn slot(&self) -> Result<Slot, QueryError> {
        let slots = self.limits.slots.clone();
        match tokio::time::timeout(self.limits.timeout, slots.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot(permit)),
            _ => Err(QueryError::Busy(self.limits.max_concurrent)),
        }
    }

    /// Runs `work` in a query slot on its own task, cancelled when it outlives the query
    /// timeout or when the caller stops waiting (the request was dropped).
    pub async fn bounded<T, F>(&self, work: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, QueryError>> + Send + 'static,
    {
        let started = tokio::time::Instant::now();
        let slot = self.slot().await?;
        let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let out = work.await;
            drop(slot);
            out
        }));
        let left = self.limits.timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => Err(QueryError::Execution(format!("the query task failed: {e}"))),
            // Dropping the handle aborts the task and with it the plan's streams.
            Err(_) => Err(QueryError::Timeout(self.limits.timeout.as_secs())),
        }
    }

    /// Runs one read-only SQL statement under every `[query]` limit: a slot, the timeout, the
    /// memory pool (the result counts in it too) and the row cap.
    pub async fn sql_bounded(&self, sql: &str) -> Result<Bounded, QueryError> {
        // The query runs in a context of its own whose pool is its share of the shared one.
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryPool {
            shared: self.limits.pool.clone(),
            cap: usize::try_from(self.limits.memory_limit / 4 * 3).unwrap_or(usize::MAX),
            used: Default::default(),
        });
        let state = self.ctx.state();
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(pool.clone())
            .build_arc()
            .map_err(classify)?;
        let state =
            datafusion::execution::session_state::SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime)
                .build();
        let ctx = SessionContext::new_with_state(state);
        let df = plan(&ctx, sql).await?;
        let max_rows = self.limits.max_rows;
        self.bounded(async move {
            // EXPLAIN [ANALYZE] must stay the root of its plan; its answer is a few rows.
            let explains = matches!(
                df.logical_plan(),
                datafusion::logical_expr::LogicalPlan::Explain(_)
                    | datafusion::logical_expr::LogicalPlan::Analyze(_)
            );
            let df = if explains {
                df
            } else {
                df.limit(0, Some(max_rows + 1)).map_err(classify)?
            };
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let mut stream = df.execute_stream().await.map_err(classify)?;
            let reservation = MemoryConsumer::new("query result").register(&pool);
            let (mut batches, mut rows, mut truncated) = (Vec::new(), 0usize, false);
            while let Some(batch) = stream.next().await {
                let mut batch = batch.map_err(classify)?;
                if rows + batch.num_rows() > max_rows {
                    batch = batch.slice(0, max_rows - rows);
                    truncated = true;
                }
                reservation
                    .try_grow(batch.get_array_memory_size())
                    .map_err(classify)?;
                rows += batch.num_rows();
                if batch.num_rows() > 0 {
                    batches.push(batch);
                }
                if truncated {
                    break;
                }
            }
            Ok(Bounded {
                schema,
                batches,
                rows,
                truncated,
                _reservation: reservation,
            })
        })
        .await
    }
}

/// Plans one read-only statement: DDL, DML, COPY and other statements are refused, and so is
/// an expression too long to plan without exhausting the stack.
async fn plan(
    ctx: &SessionContext,
    sql: &str,
) -> Result<datafusion::dataframe::DataFrame, QueryError> {
    {
        check_operators(sql)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        match ctx.sql_with_options(sql, options).await {
            Ok(df) => Ok(df),
            Err(e) => {
                let text = e.to_string();
                if text.contains("not supported") {
                    return Err(QueryError::NotReadOnly(text));
                }
                Err(classify(e))
            }
        }
    }
}

impl QueryEngine {
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

    /// Runs one read-only SQL statement within the memory pool, without a row cap or a slot
    /// (the CLI, and views whose size the code bounds).
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        plan(&self.ctx, sql)
            .await?
            .collect()
            .await
            .map_err(classify)
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
    /// The instant SLA clocks are valued at now (ms): the fixed one, or the wall clock.
    pub fn sla_now(&self) -> i64 {
        self.sla_at
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis())
    }

    /// Rows of `batches` (of `schema`) matching `filter`, sorted by one column then
    /// `ticket_id`, at most `limit`.
    pub async fn filter_sort(
        &self,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        filter: Expr,
        order_by: &str,
        ascending: bool,
        limit: usize,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let table = MemTable::try_new(schema, vec![batches]).map_err(classify)?;
        self.ctx
            .read_table(Arc::new(table))
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

/// The rows of `batch` as JSON objects separated by commas (no brackets), preceded by a comma
/// unless `first`: the pieces of a JSON array that a response streams batch by batch.
pub fn json_rows_piece(batch: &RecordBatch, first: bool) -> Result<Vec<u8>, QueryError> {
    let mut out = Vec::new();
    {
        let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut out);
        w.write(batch).map_err(|e| QueryError::Write {
            path: PathBuf::from("-"),
            detail: e.to_string(),
        })?;
        w.finish().map_err(|e| QueryError::Write {
            path: PathBuf::from("-"),
            detail: e.to_string(),
        })?;
    }
    // One object per line; JSON escapes newlines inside strings, so each b'\n' ends an object.
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    for b in &mut out {
        if *b == b'\n' {
            *b = b',';
        }
    }
    if !first && !out.is_empty() {
        out.insert(0, b',');
    }
    Ok(out)
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
    let all: Vec<usize> = (0..EVENTS_SCHEMA.fields().len()).collect();
    type Batches<'a> = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + 'a>;
    let tables: [(&str, SchemaRef, Batches<'_>); 2] = [
        (
            "tickets",
            TICKETS_SCHEMA.clone(),
            Box::new(snapshot.tickets.iter().cloned().map(Ok)),
        ),
        (
            "ticket_events",
            EVENTS_SCHEMA.clone(),
            Box::new(snapshot.events.iter().map(|c| c.read(&all))),
        ),
    ];
    for (name, schema, batches) in tables {
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
            let b = b.map_err(|e| werr(e.to_string()))?;
            rows += b.num_rows();
            writer.write(&b).map_err(|e| werr(e.to_string()))?;
        }
        writer.close().map_err(|e| werr(e.to_string()))?;
        written.push((name.to_string(), rows));
    }
    Ok(written)
}
