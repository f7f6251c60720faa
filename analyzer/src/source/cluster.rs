//! Running leakscope's SQL on an Apache DataFusion Ballista cluster: the pieces shared by the
//! scheduler (`leakscope-scheduler`), the executors (`leakscope-executor`) and the client
//! (`leakscope sql --cluster df://HOST:PORT`).
//!
//! Every part knows leakscope's SQL functions ([`crate::sql::udf`]): the client plans with them,
//! the scheduler decodes the client's logical plan and plans it physically, the executors
//! decode and run the physical plan's tasks.
//!
//! The client opens the captures with [`crate::source::catalog::open`] as a local run does, then
//! mirrors that catalog on a remote session ([`open`]): every capture table becomes a
//! [`SegmentTable`], the same listing table (same name, schema, partition column) restricted
//! to the files the local catalog lists (committed segment sets only, unreadable segments
//! left out); every view is created again from its SQL. A [`SegmentTable`] travels with the
//! plan through [`LeakscopeLogicalCodec`], and the scheduler scans exactly those files.
//! Executors read the same paths, so they must see the captures at the same absolute paths
//! (the same machine, or a shared file system).
//!
//! The returned [`Catalog`] runs every query of its context on the cluster, so any code
//! that queries `Catalog::ctx` (a ranking's GROUP BY over `samples`, say) can be sent there.
//! The SQL functions use the default [`SiteRules`] everywhere: `--skip` patterns do not
//! travel to the cluster (yet; user_frame, user_function and blocked_in would need to carry
//! their patterns, e.g. through `try_encode_udf` of both codecs).
//!
//! Plans use Ballista's static distributed planner with one extra physical rule on the
//! scheduler, [`SortConstantsFirst`]; see there and [`session_config`] for why.

use std::any::Any;
use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{Schema, SchemaRef};
use async_trait::async_trait;
use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use ballista_core::{ConfigProducer, RuntimeProducer};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use bytes::Bytes;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DataFusionError, TableReference};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::ViewTable;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::{SessionState, SessionStateBuilder, TaskContext};
use datafusion::logical_expr::{
    AggregateUDF, Expr, Extension, LogicalPlan, ScalarUDF, TableProviderFilterPushDown, TableType,
    WindowUDF,
};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{AcrossPartitions, LexOrdering, PhysicalSortExpr};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

use crate::model::site::SiteRules;
use crate::source::catalog::{self, Catalog};
use crate::source::cluster_stores;
use crate::sql::udf;

/// The port a scheduler listens on when a `df://` URL names none (Ballista's default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long the client waits for the scheduler's TCP port to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Something the cluster parts cannot work with; every message names the URL or table.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The `--cluster` value is not a `df://HOST[:PORT]` URL.
    #[error("{url}: not a Ballista scheduler URL ({reason}); expected df://HOST:PORT")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answers at the scheduler's address.
    #[error("{url}: cannot reach the Ballista scheduler ({reason})")]
    Unreachable {
        /// The URL as given.
        url: String,
        /// Why the connection failed.
        reason: String,
    },
    /// A local table or view cannot be set up on the remote session.
    #[error("{table}: cannot register on the cluster: {reason}")]
    Mirror {
        /// Table or view name.
        table: String,
        /// Why.
        reason: String,
    },
    /// A scheduler or executor failed to start or stopped with an error.
    #[error("{context}: {reason}")]
    Server {
        /// What was being done.
        context: String,
        /// The underlying error, on one line.
        reason: String,
    },
    /// Opening the captures failed.
    #[error(transparent)]
    Analyze(#[from] crate::AnalyzeError),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, ClusterError>;

fn server_error(context: impl Into<String>) -> impl FnOnce(String) -> ClusterError {
    let context = context.into();
    move |reason| ClusterError::Server {
        context,
        reason: reason.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

// ---------------------------------------------------------------------------------------
// Functions, codecs and session state shared by every part
// ---------------------------------------------------------------------------------------

/// A plain session holding DataFusion's functions and every leakscope SQL function.
fn functions_context() -> SessionContext {
    let ctx = SessionContext::new();
    udf::register(&ctx, &SiteRules::default());
    ctx
}

/// The function registry of an executor: DataFusion's functions and leakscope's.
pub fn function_registry() -> Arc<BallistaFunctionRegistry> {
    Arc::new(BallistaFunctionRegistry::from(&functions_context().state()))
}

/// `state` with every leakscope SQL function registered.
pub fn with_functions(state: SessionState) -> SessionState {
    let ctx = SessionContext::new_with_state(state);
    udf::register(&ctx, &SiteRules::default());
    ctx.state()
}

/// The logical plan codec of every part: Ballista's, plus [`SegmentTable`].
pub fn logical_codec() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(LeakscopeLogicalCodec::default())
}

/// The physical plan codec of every part (Ballista's: the scans are plain Parquet scans
/// and the functions travel by name).
pub fn physical_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(BallistaPhysicalExtensionCodec::default())
}

/// Largest join side (bytes) that is broadcast to every task instead of repartitioning
/// both sides; `rank --cluster` ships its stack-to-group map (about 40 bytes per stack) and
/// its profile list as such sides.
const BROADCAST_BYTES: u64 = 64 << 20;

/// Largest join side (rows) that is broadcast, see [`BROADCAST_BYTES`].
const BROADCAST_ROWS: u64 = 4 << 20;

/// The session configuration of every part: Ballista's, with [`logical_codec`] and the
/// static distributed planner; hash joins whose build side is the side written first in
/// the query (`join_reordering` off), broadcast up to [`BROADCAST_BYTES`]. Statistics of
/// a join's output are estimates, and with reordering on the planner put the sample side
/// of `rank --cluster`'s joins on the build side and broadcast every sample row; with it
/// off, the small inline tables written first are broadcast and sample rows stay put.
///
/// Ballista's adaptive planner (the default) optimizes with a fixed list of rules that
/// [`SortConstantsFirst`] cannot join, and its plans of window functions partitioned by a
/// constant column fail (see there); the static planner runs the session's rules.
pub fn session_config() -> SessionConfig {
    SessionConfig::new_with_ballista()
        .with_information_schema(true)
        .with_ballista_logical_extension_codec(logical_codec())
        .with_ballista_physical_extension_codec(physical_codec())
        .set_bool(
            ballista_core::config::BALLISTA_ADAPTIVE_PLANNER_ENABLED,
            false,
        )
        .set_bool("datafusion.optimizer.prefer_hash_join", true)
        .set_bool("datafusion.optimizer.join_reordering", false)
        .set_u64(
            "datafusion.optimizer.hash_join_single_partition_threshold",
            BROADCAST_BYTES,
        )
        .set_u64(
            "datafusion.optimizer.hash_join_single_partition_threshold_rows",
            BROADCAST_ROWS,
        )
}

/// The scheduler's session builder: Ballista's default session with leakscope's functions,
/// so that it can decode and plan the client's logical plans, and [`SortConstantsFirst`].
pub fn scheduler_session(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let state = with_functions(ballista_core::utils::default_session_builder(config)?);
    // The scheduler lists the files of `s3://` captures when it plans their scans.
    let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
        .with_object_store_registry(cluster_stores::shared())
        .build_arc()?;
    Ok(SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .with_physical_optimizer_rule(Arc::new(SortConstantsFirst))
        .build())
}

/// A physical optimizer rule for plans that Ballista cuts into stages: every sort (and
/// sorted merge) also sorts by the columns its input holds constant (the same value in
/// every partition), first.
///
/// DataFusion leaves constant columns out of sort keys (the per-capture `'demo' AS capture`
/// of the `profiles` view sorts as nothing). Ballista then cuts the plan at the shuffle
/// below the sort, and the stage above no longer knows that the column is constant: a
/// window function partitioned by it fails with "Expects PARTITION BY expression to be
/// ordered" (the shipped `gaps_and_restarts` query did). Sorting by a constant costs one
/// comparison of equal values and keeps the ordering explicit across stages.
#[derive(Debug, Default)]
pub struct SortConstantsFirst;

impl SortConstantsFirst {
    /// `ordering` with the constant columns of `input` that it lacks put first.
    fn with_constants(
        input: &Arc<dyn ExecutionPlan>,
        ordering: &LexOrdering,
    ) -> Option<LexOrdering> {
        let constants: Vec<PhysicalSortExpr> = input
            .equivalence_properties()
            .constants()
            .into_iter()
            // Only columns with one value in every partition: a column constant within
            // each partition but not across them would reorder a merge.
            .filter(|c| matches!(c.across_partitions, AcrossPartitions::Uniform(_)))
            .filter(|c| c.expr.downcast_ref::<Column>().is_some())
            .filter(|c| !ordering.iter().any(|e| e.expr.as_ref() == c.expr.as_ref()))
            .map(|c| PhysicalSortExpr::new_default(c.expr))
            .collect();
        if constants.is_empty() {
            return None;
        }
        LexOrdering::new(constants.into_iter().chain(ordering.iter().cloned()))
    }
}

impl PhysicalOptimizerRule for SortConstantsFirst {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            if let Some(sort) = node.downcast_ref::<SortExec>() {
                if let Some(ordering) = Self::with_constants(sort.input(), sort.expr()) {
                    let new = SortExec::new(ordering, Arc::clone(sort.input()))
                        .with_preserve_partitioning(sort.preserve_partitioning())
                        .with_fetch(sort.fetch());
                    return Ok(Transformed::yes(Arc::new(new) as Arc<dyn ExecutionPlan>));
                }
            } else if let Some(merge) = node.downcast_ref::<SortPreservingMergeExec>() {
                if let Some(ordering) = Self::with_constants(merge.input(), merge.expr()) {
                    let new = SortPreservingMergeExec::new(ordering, Arc::clone(merge.input()))
                        .with_fetch(merge.fetch());
                    return Ok(Transformed::yes(Arc::new(new) as Arc<dyn ExecutionPlan>));
                }
            }
            Ok(Transformed::no(node))
        })
        .data()
    }

    fn name(&self) -> &str {
        "leakscope_sort_constants_first"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Wraps Ballista's logical codec and adds [`SegmentTable`] (as JSON after a magic prefix).
#[derive(Debug, Default)]
pub struct LeakscopeLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

/// Prefix of an encoded [`SegmentTable`].
const SEGMENT_TABLE_MAGIC: &[u8] = b"leakscope.segment_table.v1:";

impl LogicalExtensionCodec for LeakscopeLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> datafusion::common::Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> datafusion::common::Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> datafusion::common::Result<Arc<dyn TableProvider>> {
        match buf.strip_prefix(SEGMENT_TABLE_MAGIC) {
            Some(json) => {
                let spec: SegmentSpec = serde_json::from_slice(json).map_err(|e| {
                    DataFusionError::Internal(format!("{table_ref}: segment table: {e}"))
                })?;
                Ok(Arc::new(SegmentTable::from_spec(spec, schema)?))
            }
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> datafusion::common::Result<()> {
        match (node.as_ref() as &dyn Any).downcast_ref::<SegmentTable>() {
            Some(table) => {
                buf.extend_from_slice(SEGMENT_TABLE_MAGIC);
                serde_json::to_writer(&mut *buf, &table.spec).map_err(|e| {
                    DataFusionError::Internal(format!("{table_ref}: segment table: {e}"))
                })
            }
            None => self.inner.try_encode_table_provider(table_ref, node, buf),
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> datafusion::common::Result<Arc<dyn datafusion::datasource::file_format::FileFormatFactory>>
    {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn datafusion::datasource::file_format::FileFormatFactory>,
    ) -> datafusion::common::Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> datafusion::common::Result<Arc<ScalarUDF>> {
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udf(
        &self,
        node: &ScalarUDF,
        buf: &mut Vec<u8>,
    ) -> datafusion::common::Result<()> {
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udaf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> datafusion::common::Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(
        &self,
        node: &AggregateUDF,
        buf: &mut Vec<u8>,
    ) -> datafusion::common::Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(
        &self,
        name: &str,
        buf: &[u8],
    ) -> datafusion::common::Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(
        &self,
        node: &WindowUDF,
        buf: &mut Vec<u8>,
    ) -> datafusion::common::Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

// ---------------------------------------------------------------------------------------
// Capture tables on the cluster
// ---------------------------------------------------------------------------------------

/// What a [`SegmentTable`] is made of, as it travels in a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SegmentSpec {
    /// URLs of the listing table's directories.
    pub table_paths: Vec<String>,
    /// File extension of its files (`.parquet`).
    pub file_extension: String,
    /// Hive partition columns (their types are the table schema's).
    pub partition_cols: Vec<String>,
    /// Object store paths of the files it may read, sorted.
    pub files: Vec<String>,
}

/// A Parquet listing table restricted to a fixed set of files: a capture table as the
/// client's local catalog listed it (committed segment sets, readable segments only).
#[derive(Debug)]
pub struct SegmentTable {
    spec: SegmentSpec,
    listing: Arc<ListingTable>,
    files: Arc<HashSet<StorePath>>,
}

impl SegmentTable {
    /// The table over the files `listing` lists in `session` (the local catalog's session,
    /// whose object store hides uncommitted and unreadable segments).
    pub async fn from_listing(listing: &ListingTable, session: &dyn Session) -> Result<Self> {
        let name = listing
            .table_paths()
            .first()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let mirror = |reason: String| ClusterError::Mirror {
            table: name.clone(),
            reason,
        };
        let options = listing.options();
        if (options.format.as_ref() as &dyn Any)
            .downcast_ref::<ParquetFormat>()
            .is_none()
        {
            return Err(mirror(
                "only Parquet listing tables can run on a cluster".into(),
            ));
        }
        let listed = listing
            .list_files_for_scan(session, &[], None)
            .await
            .map_err(|e| mirror(one_line(&e.to_string())))?;
        let mut files: Vec<String> = listed
            .file_groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|f| f.object_meta.location.to_string())
            .collect();
        files.sort();
        files.dedup();
        let spec = SegmentSpec {
            table_paths: listing
                .table_paths()
                .iter()
                .map(|u| u.to_string())
                .collect(),
            file_extension: options.file_extension.clone(),
            partition_cols: options
                .table_partition_cols
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
            files,
        };
        SegmentTable::from_spec(spec, listing.schema())
            .map_err(|e| mirror(one_line(&e.to_string())))
    }

    /// Rebuilds the table from its spec and its schema (partition columns last).
    pub fn from_spec(spec: SegmentSpec, schema: SchemaRef) -> datafusion::common::Result<Self> {
        let partition_cols = spec
            .partition_cols
            .iter()
            .map(|n| Ok((n.clone(), schema.field_with_name(n)?.data_type().clone())))
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let file_schema = Schema::new(
            schema
                .fields()
                .iter()
                .filter(|f| !spec.partition_cols.contains(f.name()))
                .cloned()
                .collect::<Vec<_>>(),
        )
        .with_metadata(schema.metadata().clone());
        let urls = spec
            .table_paths
            .iter()
            .map(ListingTableUrl::parse)
            .collect::<datafusion::common::Result<Vec<_>>>()?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(spec.file_extension.clone())
            .with_table_partition_cols(partition_cols);
        let config = ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::new(file_schema));
        let listing = Arc::new(ListingTable::try_new(config)?);
        let files = spec
            .files
            .iter()
            .map(StorePath::parse)
            .collect::<std::result::Result<HashSet<_>, _>>()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(SegmentTable {
            spec,
            listing,
            files: Arc::new(files),
        })
    }

    /// What the table is made of.
    pub fn spec(&self) -> &SegmentSpec {
        &self.spec
    }

    /// `state` with the table's object store replaced by one that lists only its files,
    /// and no cached listings.
    fn restricted(&self, state: &dyn Session) -> datafusion::common::Result<SessionState> {
        let Some(state) = state.as_any().downcast_ref::<SessionState>() else {
            return Err(DataFusionError::Internal(
                "a segment table scans only in a DataFusion SessionState".into(),
            ));
        };
        let runtime = state.runtime_env();
        let registry = DefaultObjectStoreRegistry::new();
        for path in self.listing.table_paths() {
            let url = path.object_store();
            let inner = runtime.object_store(&url)?;
            let only = OnlyStore {
                inner,
                files: Arc::clone(&self.files),
            };
            registry.register_store(url.as_ref(), Arc::new(only));
        }
        let runtime = RuntimeEnvBuilder::from_runtime_env(runtime)
            .with_object_store_registry(Arc::new(registry))
            .with_cache_manager(CacheManagerConfig::default().with_list_files_cache_limit(0))
            .build_arc()?;
        Ok(SessionStateBuilder::new_from_existing(state.clone())
            .with_runtime_env(runtime)
            .build())
    }
}

#[async_trait]
impl TableProvider for SegmentTable {
    fn schema(&self) -> SchemaRef {
        self.listing.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::common::Result<Vec<TableProviderFilterPushDown>> {
        self.listing.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        let restricted = self.restricted(state)?;
        self.listing
            .scan(&restricted, projection, filters, limit)
            .await
    }
}

/// An object store whose listings show only the given files (reads go through).
#[derive(Debug)]
struct OnlyStore {
    inner: Arc<dyn ObjectStore>,
    files: Arc<HashSet<StorePath>>,
}

impl fmt::Display for OnlyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OnlyStore({} files of {})", self.files.len(), self.inner)
    }
}

impl OnlyStore {
    fn filter(
        &self,
        s: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let files = Arc::clone(&self.files);
        s.filter(move |m| {
            let keep = match m {
                Ok(meta) => files.contains(&meta.location),
                Err(_) => true,
            };
            futures::future::ready(keep)
        })
        .boxed()
    }
}

#[async_trait]
impl ObjectStore for OnlyStore {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &StorePath,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.filter(self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&StorePath>,
        offset: &StorePath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.filter(self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        let mut result = self.inner.list_with_delimiter(prefix).await?;
        result.objects.retain(|m| self.files.contains(&m.location));
        Ok(result)
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

/// The `main` of a cluster binary named `name`: logs at `info` unless `RUST_LOG` says
/// otherwise, runs `work` on a multi-threaded runtime, and turns an error into one line on
/// stderr and the error exit status ([`leakscope_capture::exit::ERROR`]).
pub fn run_binary<F>(name: &str, work: F) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::Error::new(e).context("starting the async runtime"))
        .and_then(|rt| rt.block_on(work));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}");
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("{name}: error: {line}");
            std::process::ExitCode::from(leakscope_capture::exit::ERROR)
        }
    }
}

/// Host and port of a `df://HOST[:PORT]` scheduler URL.
pub fn parse_url(url: &str) -> Result<(String, u16)> {
    let bad = |reason: &str| ClusterError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "df" {
        return Err(bad("the scheme must be df://"));
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| bad("no host"))?;
    if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() {
        return Err(bad("no path or query allowed"));
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((
        host.to_string(),
        parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT),
    ))
}

/// A session whose queries run on the Ballista scheduler at `url` (`df://HOST:PORT`), with
/// leakscope's SQL functions. Fails within [`CONNECT_TIMEOUT`] when the scheduler's port
/// does not answer. Tables are registered by [`mirror`].
pub async fn connect(url: &str) -> Result<SessionContext> {
    connect_tcp(url).await?;
    let unreachable = |reason: String| ClusterError::Unreachable {
        url: url.to_string(),
        reason,
    };
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(session_config())
        .build();
    let ctx = SessionContext::remote_with_state(url, state)
        .await
        .map_err(|e| unreachable(one_line(&e.to_string())))?;
    udf::register(&ctx, &SiteRules::default());
    Ok(ctx)
}

/// Registers on `remote` every table and view of the local catalog `local`, under the same
/// names: listing tables as [`SegmentTable`]s over the files the local session lists,
/// views again from their SQL.
pub async fn mirror(local: &Catalog, remote: &SessionContext) -> Result<()> {
    let state = local.ctx.state();
    let options = state.config_options();
    let (catalog_name, schema_name) = (
        options.catalog.default_catalog.clone(),
        options.catalog.default_schema.clone(),
    );
    let missing = |what: &str| ClusterError::Mirror {
        table: format!("{catalog_name}.{schema_name}"),
        reason: format!("no {what} in the local session"),
    };
    let schema = local
        .ctx
        .catalog(&catalog_name)
        .ok_or_else(|| missing("catalog"))?
        .schema(&schema_name)
        .ok_or_else(|| missing("schema"))?;
    let mut names = schema.table_names();
    names.sort();
    let mut views: Vec<(String, String)> = Vec::new();
    for name in names {
        let mirror = |reason: String| ClusterError::Mirror {
            table: name.clone(),
            reason,
        };
        let table = schema
            .table(&name)
            .await
            .map_err(|e| mirror(one_line(&e.to_string())))?
            .ok_or_else(|| mirror("vanished from the local session".into()))?;
        if let Some(listing) = (table.as_ref() as &dyn Any).downcast_ref::<ListingTable>() {
            let segments = SegmentTable::from_listing(listing, &state).await?;
            remote
                .register_table(name.as_str(), Arc::new(segments))
                .map_err(|e| mirror(one_line(&e.to_string())))?;
        } else if let Some(view) = (table.as_ref() as &dyn Any).downcast_ref::<ViewTable>() {
            let sql = view
                .definition()
                .ok_or_else(|| mirror("a view without SQL text".into()))?;
            views.push((name.clone(), sql.clone()));
        } else {
            return Err(mirror("neither a listing table nor a view".into()));
        }
    }
    // Views read tables and other views: create them in as many rounds as they need.
    while !views.is_empty() {
        let before = views.len();
        let mut left = Vec::new();
        let mut last_error = None;
        for (name, sql) in views {
            if let Err(e) = remote.sql(&sql).await {
                last_error = Some(ClusterError::Mirror {
                    table: name.clone(),
                    reason: one_line(&e.to_string()),
                });
                left.push((name, sql));
            }
        }
        if let Some(e) = last_error.filter(|_| left.len() == before) {
            return Err(e);
        }
        views = left;
    }
    Ok(())
}

/// Opens `dirs` as [`catalog::open`] does and mirrors the catalog on the cluster at `url`:
/// the returned catalog's context runs every query there (its `in_process` context keeps
/// the local session, for the small tables). The scheduler is contacted first, so an
/// unreachable one fails before the captures are read.
pub async fn open(url: &str, dirs: &[PathBuf], rules: &SiteRules) -> Result<Catalog> {
    let remote = connect(url).await?;
    let local = catalog::open(dirs, rules).await?;
    mirror(&local, &remote).await?;
    Ok(Catalog {
        ctx: remote,
        captures: local.captures,
        skipped: local.skipped,
        cluster: Some(url.to_string()),
        in_process: local.ctx,
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------------------

/// How to run a scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to bind the gRPC port to (port 0: any free port).
    pub bind: SocketAddr,
    /// Host name executors and clients reach this scheduler by.
    pub external_host: String,
    /// How long a finished job's state (its plan, with the ranking's inline tables, and its
    /// stages) is kept. Ballista's default is an hour; `fleet rank --cluster` ran two jobs
    /// per capture, and 2,000 jobs in 6 minutes took the scheduler to 2.4 GiB.
    pub keep_finished_jobs: std::time::Duration,
}

/// Runs a Ballista scheduler that knows leakscope's functions and tables, until the process
/// is stopped. `on_listening` is called with the bound address once it accepts connections.
pub async fn run_scheduler(
    options: SchedulerOptions,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| server_error(format!("binding {}", options.bind))(e.to_string()))?;
    let addr = listener
        .local_addr()
        .map_err(|e| server_error("reading the bound address")(e.to_string()))?;
    let mut config = SchedulerConfig::default()
        .with_hostname(options.external_host.clone())
        .with_port(addr.port())
        .with_override_config_producer(Arc::new(session_config))
        .with_override_session_builder(Arc::new(scheduler_session))
        .with_finished_job_state_clean_up_interval_seconds(
            options.keep_finished_jobs.as_secs().max(1),
        );
    config.bind_host = addr.ip().to_string();
    config.override_logical_codec = Some(logical_codec());
    config.override_physical_codec = Some(physical_codec());
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| server_error("setting up the scheduler's state")(e.to_string()))?;
    let scheduler = create_scheduler::<
        datafusion_proto::protobuf::LogicalPlanNode,
        datafusion_proto::protobuf::PhysicalPlanNode,
    >(cluster, config)
    .await
    .map_err(|e| server_error("starting the scheduler")(e.to_string()))?;
    on_listening(addr);
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| server_error(format!("scheduler on {addr}"))(e.to_string()))
}

/// Waits until the scheduler at `url` accepts TCP connections, trying every half second
/// for up to `timeout` (at least once).
pub async fn wait_for_scheduler(url: &str, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match connect_tcp(url).await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// One TCP connection to the scheduler at `url`, within [`CONNECT_TIMEOUT`].
async fn connect_tcp(url: &str) -> Result<()> {
    let (host, port) = parse_url(url)?;
    let unreachable = |reason: String| ClusterError::Unreachable {
        url: url.to_string(),
        reason,
    };
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Ok(Ok(_)) => Ok(()),
    }
}

/// How to run an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler, `df://HOST:PORT`.
    pub scheduler: String,
    /// Address to bind both ports to.
    pub bind_host: String,
    /// Host name the scheduler and other executors reach this executor by.
    pub external_host: String,
    /// Arrow Flight port (shuffle data and results).
    pub flight_port: u16,
    /// gRPC port (tasks pushed by the scheduler).
    pub grpc_port: u16,
    /// Tasks run at once (0: one per CPU).
    pub concurrent_tasks: usize,
    /// Directory for shuffle files (default: a temporary directory).
    pub work_dir: Option<PathBuf>,
    /// How long to keep trying to reach the scheduler at start-up (zero: one try).
    pub connect_timeout: Duration,
}

/// The Ballista executor configuration of `options`, with leakscope's functions and codecs.
pub fn executor_config(options: &ExecutorOptions) -> Result<ExecutorProcessConfig> {
    let (scheduler_host, scheduler_port) = parse_url(&options.scheduler)?;
    Ok(ExecutorProcessConfig {
        bind_host: options.bind_host.clone(),
        external_host: Some(options.external_host.clone()),
        port: options.flight_port,
        grpc_port: options.grpc_port,
        scheduler_host,
        scheduler_port,
        // One try: run_executor waits for the scheduler itself (Ballista 55's own retry
        // loop measures `Instant::now().elapsed()` and never gives up).
        scheduler_connect_timeout_seconds: 0,
        vcores: options.concurrent_tasks,
        work_dir: options.work_dir.as_ref().map(|p| p.display().to_string()),
        override_function_registry: Some(function_registry()),
        override_runtime_producer: Some(runtime_producer(options.work_dir.clone())),
        override_config_producer: Some(Arc::new(session_config) as ConfigProducer),
        override_logical_codec: Some(logical_codec()),
        override_physical_codec: Some(physical_codec()),
        ..ExecutorProcessConfig::default()
    })
}

/// The executor's runtime for each session: Ballista's default (spill files in `work_dir`
/// when given) with the object stores of [`cluster_stores`], so tasks can read the
/// segments of `s3://` captures.
fn runtime_producer(work_dir: Option<PathBuf>) -> RuntimeProducer {
    Arc::new(move |_config: &SessionConfig| {
        let mut b = RuntimeEnvBuilder::new().with_object_store_registry(cluster_stores::shared());
        if let Some(dir) = &work_dir {
            b = b.with_temp_file_path(dir.clone());
        }
        b.build_arc()
    })
}

/// Runs a Ballista executor that knows leakscope's functions, registered with the
/// scheduler, until the process is stopped (SIGINT, SIGTERM) or the scheduler stops it.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    let config = executor_config(&options)?;
    wait_for_scheduler(&options.scheduler, options.connect_timeout).await?;
    start_executor_process(Arc::new(config)).await.map_err(|e| {
        server_error(format!("executor (scheduler {})", options.scheduler))(e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_urls() {
        assert_eq!(
            parse_url("df://127.0.0.1:50123").unwrap(),
            ("127.0.0.1".to_string(), 50123)
        );
        assert_eq!(
            parse_url("df://sched").unwrap(),
            ("sched".to_string(), DEFAULT_SCHEDULER_PORT)
        );
        for bad in ["http://h:1", "df://", "h:1", "df://h:1/x", "df://h:99999"] {
            let e = parse_url(bad).unwrap_err();
            assert!(matches!(e, ClusterError::BadUrl { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn every_leakscope_function_is_in_the_executor_registry() {
        use datafusion::execution::FunctionRegistry;
        let registry = function_registry();
        let ctx = functions_context();
        let state = ctx.state();
        for name in state.scalar_functions().keys() {
            assert!(registry.udf(name).is_ok(), "{name}");
        }
        for name in state.aggregate_functions().keys() {
            assert!(registry.udaf(name).is_ok(), "{name}");
        }
        for name in [
            "format_bytes",
            "render_stack",
            "user_frame",
            "user_function",
        ] {
            assert!(registry.udf(name).is_ok(), "{name}");
        }
        for name in ["theil_sen", "mann_kendall_p"] {
            assert!(registry.udaf(name).is_ok(), "{name}");
        }
    }

    #[tokio::test]
    async fn segment_tables_keep_the_schema_and_only_the_listed_files() {
        let demo =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/captures/demo");
        let local = catalog::open(&[demo], &SiteRules::default()).await.unwrap();
        let state = local.ctx.state();
        let table = local.ctx.table_provider("__c0_samples").await.unwrap();
        let listing = (table.as_ref() as &dyn Any)
            .downcast_ref::<ListingTable>()
            .unwrap();
        let segments = SegmentTable::from_listing(listing, &state).await.unwrap();
        assert_eq!(segments.schema(), listing.schema());
        assert!(!segments.spec().files.is_empty());
        // Through the codec and back.
        let codec = LeakscopeLogicalCodec::default();
        let mut buf = Vec::new();
        let provider: Arc<dyn TableProvider> = Arc::new(segments);
        codec
            .try_encode_table_provider(&"t".into(), Arc::clone(&provider), &mut buf)
            .unwrap();
        let back = codec
            .try_decode_table_provider(&buf, &"t".into(), provider.schema(), &state.task_ctx())
            .unwrap();
        let back = (back.as_ref() as &dyn Any)
            .downcast_ref::<SegmentTable>()
            .unwrap();
        assert_eq!(
            back.spec(),
            (provider.as_ref() as &dyn Any)
                .downcast_ref::<SegmentTable>()
                .unwrap()
                .spec()
        );
        assert_eq!(back.schema(), provider.schema());
    }
}
