//! Captures in S3 (`s3://BUCKET/PREFIX`) read in place: opening one (manifest and listing of
//! its committed segment sets from the store), the object store registered for DataFusion
//! (listing only committed files, counting the bytes read), and the direct scans' Parquet
//! reads over the store (only the projected column chunks of the kept row groups).
//!
//! The S3 store comes from `leakscope_capture::remote::build_s3`: credentials from the
//! standard AWS environment only, `--s3-endpoint` (see [`set_endpoint`]) for another server.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, BoxStream, StreamExt};
use leakscope_capture::manifest::{Manifest, FORMAT_NAME, MANIFEST_FILE};
use leakscope_capture::remote::{
    build_s3, check_access, describe, list_remote_capture, store_error, Endpoint, RemoteError,
    RemoteUrl,
};
use leakscope_capture::schema::Table;
use leakscope_capture::FORMAT_VERSION;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream, SpawnedReader};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::schema::types::SchemaDescriptor;

use crate::error::{AnalyzeError, Result};
use crate::source::pread::PreadFile;
use crate::source::SkippedSegment;
use crate::sql::conform::{self, Shape};

/// Bytes read from the end of a remote segment to get its footer in one request (more
/// are fetched when the footer is larger).
pub const FOOTER_HINT: usize = 16 * 1024;

/// Footers read concurrently while a remote capture is opened.
const FOOTER_READS: usize = 8;

/// The `--s3-endpoint` given on the command line, for every remote capture of the process.
static ENDPOINT: OnceLock<Endpoint> = OnceLock::new();

/// Sets the S3-compatible server used for every `s3://` capture (`--s3-endpoint`); call once
/// before opening captures. A malformed URL is refused on one line.
pub fn set_endpoint(text: &str) -> std::result::Result<(), RemoteError> {
    let e = Endpoint::parse(text)?;
    let _ = ENDPOINT.set(e);
    Ok(())
}

/// Whether a capture argument names a capture in S3 (`s3://...`) rather than a directory.
pub fn is_remote(arg: &Path) -> bool {
    arg.to_str().is_some_and(|s| s.starts_with("s3://"))
}

/// The runtime that performs the direct scans' S3 requests: the scans run on rayon threads
/// that wait for their reads, so the reads must not need the (possibly busy) main runtime.
fn io_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("leakscope-s3")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| AnalyzeError::Remote(format!("starting the S3 I/O runtime: {e}")))
}

/// Bytes and requests served by a remote capture's stores (reads only).
#[derive(Debug, Default)]
pub struct ReadStats {
    bytes: AtomicU64,
    requests: AtomicU64,
}

impl ReadStats {
    /// Bytes of object data read so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Read requests (GET, ranged GET) so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn add(&self, bytes: u64, requests: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.requests.fetch_add(requests, Ordering::Relaxed);
    }
}

/// One committed segment file of a remote capture, with its footer already read.
#[derive(Debug, Clone)]
pub struct RemoteSegment {
    /// The store the direct scans read through (its own HTTP client, see [`io_runtime`]).
    store: Arc<dyn ObjectStore>,
    /// The object.
    pub meta: ObjectMeta,
    /// Its table.
    pub table: Table,
    /// Its footer, decoded once when the capture was opened.
    reader_meta: ArrowReaderMetadata,
}

/// A capture in S3, opened: its committed files and the stores that read them.
pub struct RemoteCapture {
    /// Where it is.
    pub url: RemoteUrl,
    /// The committed, readable data files, sorted by key.
    pub segments: Vec<RemoteSegment>,
    /// Store for DataFusion: lists exactly the committed readable files, counts reads.
    listing_store: Arc<CaptureStore>,
    /// Bytes read from S3 for this capture (DataFusion and the direct scans).
    pub stats: Arc<ReadStats>,
}

impl fmt::Debug for RemoteCapture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RemoteCapture({}, {} files)",
            self.url,
            self.segments.len()
        )
    }
}

impl Drop for RemoteCapture {
    fn drop(&mut self) {
        log::debug!(
            "{}: read {} bytes from S3 in {} requests",
            self.url,
            self.stats.bytes(),
            self.stats.requests()
        );
    }
}

/// The `s3://` URL of an object, as a path for messages and skip lists.
fn shown_path(url: &RemoteUrl, location: &ObjectPath) -> PathBuf {
    PathBuf::from(format!("s3://{}/{}", url.bucket, location))
}

impl RemoteCapture {
    /// The committed readable segments of `table`, oldest first, with their `s3://` paths.
    pub fn table_segments(&self, table: Table) -> Vec<(PathBuf, RemoteSegment)> {
        self.segments
            .iter()
            .filter(|s| s.table == table)
            .map(|s| (shown_path(&self.url, &s.meta.location), s.clone()))
            .collect()
    }

    /// The `s3://BUCKET/PREFIX/TABLE/` URL DataFusion lists for `table`.
    pub fn table_url(&self, table: Table) -> Result<url::Url> {
        let text = format!("s3://{}/", self.url.bucket);
        let mut u = url::Url::parse(&text).map_err(|e| self.not_a_capture(e.to_string()))?;
        let path = if self.url.prefix.is_empty() {
            format!("/{}/", table.name())
        } else {
            format!("/{}/{}/", self.url.prefix, table.name())
        };
        u.set_path(&path);
        Ok(u)
    }

    fn not_a_capture(&self, reason: String) -> AnalyzeError {
        AnalyzeError::NotACapture {
            path: PathBuf::from(self.url.to_string()),
            reason,
        }
    }
}

/// A remote capture opened, with what [`crate::source::catalog`] needs of it.
pub struct OpenedRemote {
    /// The capture.
    pub capture: Arc<RemoteCapture>,
    /// Its manifest.
    pub manifest: Manifest,
    /// Segments left out (footer unreadable, or not readable as their table).
    pub skipped: Vec<SkippedSegment>,
}

fn remote_err(e: RemoteError) -> AnalyzeError {
    AnalyzeError::Remote(e.to_string())
}

/// Builds the S3 store for `url` from the AWS environment and `--s3-endpoint`.
pub(crate) fn store_for(url: &RemoteUrl) -> Result<Arc<dyn ObjectStore>> {
    let store = build_s3(url, ENDPOINT.get()).map_err(remote_err)?;
    Ok(Arc::new(store))
}

/// The captures below `text` (`s3://BUCKET/PREFIX`): every prefix holding a
/// `manifest.json`, found in one listing, sorted, as `s3://` URLs. Every failure is one
/// line naming the URL.
pub async fn find_captures(text: &str) -> Result<Vec<String>> {
    use futures::TryStreamExt;
    let url = RemoteUrl::parse(text).map_err(remote_err)?;
    let store = store_for(&url)?;
    check_access(store.as_ref(), &url)
        .await
        .map_err(remote_err)?;
    let prefix = url.prefix_path();
    let objects: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| remote_err(leakscope_capture::remote::store_error(&url, &e)))?;
    let mut found: Vec<String> = objects
        .iter()
        .filter_map(|m| {
            let key = m.location.as_ref();
            let parent = key.strip_suffix(MANIFEST_FILE)?;
            if !(parent.is_empty() || parent.ends_with('/')) {
                return None;
            }
            let parent = parent.trim_end_matches('/');
            Some(if parent.is_empty() {
                format!("s3://{}", url.bucket)
            } else {
                format!("s3://{}/{parent}", url.bucket)
            })
        })
        .collect();
    found.sort();
    found.dedup();
    Ok(found)
}

/// Opens the capture at `text` (`s3://BUCKET/PREFIX`): checks access, lists its committed
/// sets, reads its manifest and the footers of its committed files (checking that each
/// reads as its table, as for a local capture). Every failure is one line naming the URL.
pub async fn open(text: &str) -> Result<OpenedRemote> {
    let url = RemoteUrl::parse(text).map_err(remote_err)?;
    let stats = Arc::new(ReadStats::default());
    let inner = store_for(&url)?;
    let counted: Arc<dyn ObjectStore> = Arc::new(CaptureStore::new(
        Arc::clone(&inner),
        None,
        Arc::clone(&stats),
    ));
    check_access(counted.as_ref(), &url)
        .await
        .map_err(remote_err)?;
    let listing = list_remote_capture(counted.as_ref(), &url)
        .await
        .map_err(remote_err)?;
    let not_capture = |reason: String| AnalyzeError::NotACapture {
        path: PathBuf::from(url.to_string()),
        reason,
    };
    if listing.manifest.is_none() {
        return Err(not_capture(format!(
            "no {MANIFEST_FILE} below this prefix (nothing uploaded there, or another prefix)"
        )));
    }
    let manifest = read_manifest(counted.as_ref(), &url).await?;
    for stem in &listing.incomplete {
        log::warn!(
            "{}: ignoring segment set {stem}: no commit marker (upload incomplete)",
            url
        );
    }
    let files: Vec<(Table, ObjectMeta)> = listing
        .committed
        .iter()
        .flat_map(|s| s.files.iter())
        .filter_map(|m| table_of(&url, &m.location).map(|t| (t, m.clone())))
        .collect();
    let checked: Vec<(
        Table,
        ObjectMeta,
        std::result::Result<ArrowReaderMetadata, String>,
    )> = stream::iter(files)
        .map(|(t, m)| {
            let store = Arc::clone(&counted);
            async move {
                let r = check_segment(store, &m, t).await;
                (t, m, r)
            }
        })
        .buffered(FOOTER_READS)
        .collect()
        .await;
    // The direct scans get their own client: its connections live on the I/O runtime.
    let scan_store: Arc<dyn ObjectStore> = Arc::new(CaptureStore::new(
        store_for(&url)?,
        None,
        Arc::clone(&stats),
    ));
    let mut segments = Vec::new();
    let mut skipped = Vec::new();
    for (table, meta, r) in checked {
        match r {
            Ok(reader_meta) => segments.push(RemoteSegment {
                store: Arc::clone(&scan_store),
                meta,
                table,
                reader_meta,
            }),
            Err(reason) if reason.starts_with(STORE_FAILED) => {
                return Err(AnalyzeError::Remote(format!(
                    "{url}: {}",
                    &reason[STORE_FAILED.len()..]
                )))
            }
            Err(reason) => skipped.push(SkippedSegment {
                path: shown_path(&url, &meta.location),
                reason,
            }),
        }
    }
    segments.sort_by(|a, b| a.meta.location.cmp(&b.meta.location));
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let listed = segments.iter().map(|s| s.meta.clone()).collect();
    let listing_store = Arc::new(CaptureStore::new(inner, Some(listed), Arc::clone(&stats)));
    Ok(OpenedRemote {
        capture: Arc::new(RemoteCapture {
            url,
            segments,
            listing_store,
            stats,
        }),
        manifest,
        skipped,
    })
}

/// Marks a check failure that is the store's fault (not the segment's): it fails the open.
const STORE_FAILED: &str = "\u{0}store:";

/// The table of a data file by its first path segment below the prefix.
fn table_of(url: &RemoteUrl, location: &ObjectPath) -> Option<Table> {
    let prefix = url.prefix_path();
    let first = location.prefix_match(&prefix)?.next()?;
    Table::ALL.into_iter().find(|t| t.name() == first.as_ref())
}

/// Reads and validates the manifest (the same rules as `Manifest::read` for a directory).
async fn read_manifest(store: &dyn ObjectStore, url: &RemoteUrl) -> Result<Manifest> {
    let key = url.key(MANIFEST_FILE);
    let bytes = async { store.get(&key).await?.bytes().await }
        .await
        .map_err(|e| remote_err(store_error(url, &e)))?;
    let path = PathBuf::from(url.url_of(MANIFEST_FILE));
    let bad = |reason: String| AnalyzeError::NotACapture {
        path: path.clone(),
        reason,
    };
    let m: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid manifest: {e}")))?;
    if m.format != FORMAT_NAME {
        return Err(bad(format!("unknown format {:?}", m.format)));
    }
    if m.format_version > FORMAT_VERSION {
        return Err(bad(format!(
            "capture format version {} is newer than this build supports ({FORMAT_VERSION})",
            m.format_version
        )));
    }
    Ok(m)
}

/// A segment object as Parquet reads it: ranged GETs through the (counting) store.
#[derive(Debug, Clone)]
pub struct ObjectReader {
    store: Arc<dyn ObjectStore>,
    meta: ObjectMeta,
}

fn reader(store: Arc<dyn ObjectStore>, meta: &ObjectMeta) -> ObjectReader {
    ObjectReader {
        store,
        meta: meta.clone(),
    }
}

fn external(e: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(e))
}

impl AsyncFileReader for ObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.meta.location, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.meta.location, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.meta.size;
            let m = ParquetMetaDataReader::new()
                .with_metadata_options(options.map(|o| o.metadata_options().clone()))
                .with_column_index_policy(
                    options.map_or(PageIndexPolicy::Skip, |o| o.column_index_policy()),
                )
                .with_offset_index_policy(
                    options.map_or(PageIndexPolicy::Skip, |o| o.offset_index_policy()),
                )
                .with_prefetch_hint(Some(FOOTER_HINT))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(m))
        }
        .boxed()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads a segment's footer and checks that its columns read as `table`'s (the rules of
/// the local check in the catalog). `Err` holds the reason to skip it, or a store failure
/// prefixed by [`STORE_FAILED`].
async fn check_segment(
    store: Arc<dyn ObjectStore>,
    meta: &ObjectMeta,
    table: Table,
) -> std::result::Result<ArrowReaderMetadata, String> {
    // A samples segment's page index comes too (one more ranged read of a few KiB): the
    // checkpoint read then fetches only the pages it needs (see `source::pages`).
    let page_index = if table == Table::Samples {
        PageIndexPolicy::Optional
    } else {
        PageIndexPolicy::Skip
    };
    let options = ArrowReaderOptions::new()
        .with_skip_arrow_metadata(true)
        .with_page_index_policy(page_index);
    let mut r = reader(Arc::clone(&store), meta);
    let reader_meta = match ArrowReaderMetadata::load_async(&mut r, options).await {
        Ok(m) => m,
        Err(parquet::errors::ParquetError::External(e)) => {
            return Err(format!("{STORE_FAILED}{}", describe(e.as_ref())))
        }
        Err(e) => return Err(format!("corrupt ({})", one_line(&e.to_string()))),
    };
    let want = table.schema();
    let (shape, check) = conform::judge(reader_meta.schema(), &want)
        .map_err(|e| format!("not readable as a {} segment: {e}", table.name()))?;
    if shape == Shape::Same || check.is_empty() {
        return Ok(reader_meta);
    }
    let names: Vec<&str> = check.iter().map(String::as_str).collect();
    let roots: Vec<usize> = names
        .iter()
        .filter_map(|c| reader_meta.schema().index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(reader_meta.parquet_schema(), roots);
    let part = conform::project(&want, &names)?;
    let mut s = ParquetRecordBatchStreamBuilder::new_with_metadata(
        reader(store, meta),
        reader_meta.clone(),
    )
    .with_projection(mask)
    .build()
    .map_err(|e| format!("corrupt ({})", one_line(&e.to_string())))?;
    while let Some(b) = s.next().await {
        let b = b.map_err(|e| format!("corrupt ({})", one_line(&e.to_string())))?;
        conform::conform(&b, &part)
            .map_err(|e| format!("not readable as a {} segment: {e}", table.name()))?;
    }
    Ok(reader_meta)
}

/// Registers one store per bucket of `captures` on the session, listing exactly their
/// committed readable files (several captures in one bucket share it).
pub fn register_stores(ctx: &datafusion::prelude::SessionContext, captures: &[&RemoteCapture]) {
    let mut by_bucket: HashMap<&str, Vec<&RemoteCapture>> = HashMap::new();
    for c in captures {
        by_bucket.entry(c.url.bucket.as_str()).or_default().push(c);
    }
    for (bucket, caps) in by_bucket {
        let Some(first) = caps.first() else { continue };
        let mut files: Vec<ObjectMeta> = caps
            .iter()
            .flat_map(|c| c.segments.iter().map(|s| s.meta.clone()))
            .collect();
        files.sort_by(|a, b| a.location.cmp(&b.location));
        files.dedup_by(|a, b| a.location == b.location);
        let store = CaptureStore::new(
            Arc::clone(&first.listing_store.inner),
            Some(files),
            Arc::clone(&first.stats),
        );
        if let Ok(u) = url::Url::parse(&format!("s3://{bucket}")) {
            ctx.register_object_store(&u, Arc::new(store));
        }
    }
}

/// An S3 store as the analyzer reads it: listings answered from the committed files known
/// when the capture was opened (no request, and nothing uncommitted), reads counted.
#[derive(Debug)]
pub struct CaptureStore {
    inner: Arc<dyn ObjectStore>,
    /// Sorted by location; `None` passes listings through.
    files: Option<Arc<Vec<ObjectMeta>>>,
    stats: Arc<ReadStats>,
}

impl CaptureStore {
    fn new(
        inner: Arc<dyn ObjectStore>,
        files: Option<Vec<ObjectMeta>>,
        stats: Arc<ReadStats>,
    ) -> CaptureStore {
        CaptureStore {
            inner,
            files: files.map(Arc::new),
            stats,
        }
    }

    fn below(files: &[ObjectMeta], prefix: Option<&ObjectPath>) -> Vec<ObjectMeta> {
        files
            .iter()
            .filter(|m| prefix.is_none_or(|p| m.location.prefix_match(p).is_some()))
            .cloned()
            .collect()
    }
}

impl fmt::Display for CaptureStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CaptureStore({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CaptureStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        let r = self.inner.get_opts(location, options).await?;
        if !head {
            let n = r.range.end.saturating_sub(r.range.start);
            log::trace!("GET {location} {:?}: {n} bytes", r.range);
            self.stats.add(n, 1);
        }
        Ok(r)
    }

    // `get_ranges` is the trait's: it coalesces the ranges into `get_opts` calls of this
    // store, so the bytes counted are the bytes transferred.

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match &self.files {
            Some(files) => stream::iter(Self::below(files, prefix).into_iter().map(Ok)).boxed(),
            None => self.inner.list(prefix),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match &self.files {
            Some(files) => {
                let offset = offset.clone();
                let v: Vec<_> = Self::below(files, prefix)
                    .into_iter()
                    .filter(|m| m.location > offset)
                    .map(Ok)
                    .collect();
                stream::iter(v).boxed()
            }
            None => self.inner.list_with_offset(prefix, offset),
        }
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        let Some(files) = &self.files else {
            return self.inner.list_with_delimiter(prefix).await;
        };
        let base = prefix.cloned().unwrap_or_default();
        let mut objects = Vec::new();
        let mut common = BTreeSet::new();
        for m in files.iter() {
            let Some(mut rest) = m.location.prefix_match(&base) else {
                continue;
            };
            let Some(first) = rest.next() else { continue };
            if rest.next().is_some() {
                common.insert(base.clone().join(first.as_ref()));
            } else {
                objects.push(m.clone());
            }
        }
        Ok(ListResult {
            common_prefixes: common.into_iter().collect(),
            objects,
        })
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// A segment's Parquet reader being configured: a local file (the fast path, unchanged) or
/// an object in S3 (async reads of only the chosen column chunks, on [`io_runtime`]).
pub enum SegmentBuilder {
    /// A local file read with positioned reads.
    Local(ParquetRecordBatchReaderBuilder<PreadFile>),
    /// An object in S3.
    Remote(ParquetRecordBatchStreamBuilder<SpawnedReader<ObjectReader>>),
}

/// Applies the same builder call to either kind.
macro_rules! both {
    ($self:expr, $b:ident => $e:expr) => {
        match $self {
            SegmentBuilder::Local($b) => SegmentBuilder::Local($e),
            SegmentBuilder::Remote($b) => SegmentBuilder::Remote($e),
        }
    };
}

impl SegmentBuilder {
    /// The remote builder of `seg`, from its footer read at open time.
    pub fn remote(seg: &RemoteSegment) -> Result<SegmentBuilder> {
        let handle = io_runtime()?.handle().clone();
        let r = SpawnedReader::new(reader(Arc::clone(&seg.store), &seg.meta), handle);
        Ok(SegmentBuilder::Remote(
            ParquetRecordBatchStreamBuilder::new_with_metadata(r, seg.reader_meta.clone()),
        ))
    }

    /// The file's Arrow schema (from its Parquet types).
    pub fn schema(&self) -> &SchemaRef {
        match self {
            SegmentBuilder::Local(b) => b.schema(),
            SegmentBuilder::Remote(b) => b.schema(),
        }
    }

    /// The file's Parquet schema.
    pub fn parquet_schema(&self) -> &SchemaDescriptor {
        match self {
            SegmentBuilder::Local(b) => b.parquet_schema(),
            SegmentBuilder::Remote(b) => b.parquet_schema(),
        }
    }

    /// The file's footer.
    pub fn metadata(&self) -> &Arc<ParquetMetaData> {
        match self {
            SegmentBuilder::Local(b) => b.metadata(),
            SegmentBuilder::Remote(b) => b.metadata(),
        }
    }

    /// Reads only these row groups.
    pub fn with_row_groups(self, groups: Vec<usize>) -> Self {
        both!(self, b => b.with_row_groups(groups))
    }

    /// Reads only these columns.
    pub fn with_projection(self, mask: ProjectionMask) -> Self {
        both!(self, b => b.with_projection(mask))
    }

    /// Rows per batch.
    pub fn with_batch_size(self, rows: usize) -> Self {
        both!(self, b => b.with_batch_size(rows))
    }

    /// Reads only these rows.
    pub fn with_row_selection(self, selection: RowSelection) -> Self {
        both!(self, b => b.with_row_selection(selection))
    }

    /// The batches; errors as text (each kind's own message).
    pub fn build(self) -> std::result::Result<SegmentBatches, String> {
        match self {
            SegmentBuilder::Local(b) => b
                .build()
                .map(SegmentBatches::Local)
                .map_err(|e| e.to_string()),
            SegmentBuilder::Remote(b) => b
                .build()
                .map(|s| SegmentBatches::Remote(Box::new(s)))
                .map_err(|e| e.to_string()),
        }
    }
}

/// The record batches of a segment, read on the calling (rayon) thread; a remote
/// segment's requests run on [`io_runtime`] while the caller waits.
pub enum SegmentBatches {
    /// A local file.
    Local(ParquetRecordBatchReader),
    /// An object in S3.
    Remote(Box<ParquetRecordBatchStream<SpawnedReader<ObjectReader>>>),
}

impl Iterator for SegmentBatches {
    type Item = std::result::Result<RecordBatch, String>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            SegmentBatches::Local(r) => r.next().map(|b| b.map_err(|e| e.to_string())),
            SegmentBatches::Remote(s) => futures::executor::block_on(s.next()).map(|b| {
                b.map_err(|e| match e {
                    parquet::errors::ParquetError::External(e) => describe(e.as_ref()),
                    e => e.to_string(),
                })
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    fn meta(key: &str) -> ObjectMeta {
        ObjectMeta {
            location: ObjectPath::from(key),
            last_modified: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            size: 10,
            e_tag: None,
            version: None,
        }
    }

    #[test]
    fn s3_arguments_are_told_from_directories() {
        assert!(is_remote(Path::new("s3://caps/x")));
        assert!(!is_remote(Path::new("caps/x")));
        assert!(!is_remote(Path::new("./s3://x")));
    }

    #[test]
    fn tables_are_found_below_the_prefix() {
        let url = RemoteUrl::parse("s3://caps/team/cap").unwrap();
        let loc = ObjectPath::from("team/cap/samples/date=2026-11-28/S.parquet");
        assert_eq!(table_of(&url, &loc), Some(Table::Samples));
        assert_eq!(table_of(&url, &ObjectPath::from("other/samples/x")), None);
    }

    #[tokio::test]
    async fn listings_hold_only_the_committed_files() {
        let files = vec![
            meta("p/samples/date=2026-11-28/A.parquet"),
            meta("p/samples/date=2026-11-29/B.parquet"),
            meta("p/stacks/date=2026-11-28/A.parquet"),
        ];
        let inner: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let store = CaptureStore::new(inner, Some(files), Arc::default());
        let listed: Vec<ObjectMeta> = store
            .list(Some(&ObjectPath::from("p/samples")))
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 2);
        let top = store
            .list_with_delimiter(Some(&ObjectPath::from("p/samples")))
            .await
            .unwrap();
        assert!(top.objects.is_empty());
        assert_eq!(
            top.common_prefixes,
            vec![
                ObjectPath::from("p/samples/date=2026-11-28"),
                ObjectPath::from("p/samples/date=2026-11-29")
            ]
        );
        let leaf = store
            .list_with_delimiter(Some(&ObjectPath::from("p/samples/date=2026-11-29")))
            .await
            .unwrap();
        assert_eq!(leaf.objects.len(), 1);
    }
}
