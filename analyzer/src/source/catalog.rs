//! Opens captures and registers their tables, views and functions in a DataFusion session.
//!
//! Each capture table is a listing table over `CAPTURE/TABLE/` (hive partition `date`,
//! pruned by DataFusion). With several captures, the public table `samples` is the union of
//! every capture's samples with a `capture` column naming the source. Segments whose
//! Parquet footer cannot be read, or whose columns do not read losslessly as the table's
//! (a foreign writer's types, see [`crate::sql::conform`]), are reported and hidden from the
//! listing; the others are cast to the table's types by DataFusion and the direct scans.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_schema::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::config::SessionConfig;
use datafusion::prelude::SessionContext;
use leakscope_capture::footer_check;
use leakscope_capture::manifest::Manifest;
use leakscope_capture::schema::{Table, PARTITION_COLUMN};
use leakscope_capture::segment::list_segments;
use object_store::local::LocalFileSystem;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;
use rayon::prelude::*;

use crate::error::{AnalyzeError, Result};
use crate::model::site::SiteRules;
use crate::source::remote::{self, RemoteCapture};
use crate::source::store::HidingStore;
use crate::sql::conform::{self, Shape};
use crate::sql::udf;

/// One opened capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Name used in the `capture` column (directory name, made unique).
    pub name: String,
    /// Absolute directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
    /// The capture in S3 when it was given as `s3://BUCKET/PREFIX` (`dir` is then that URL).
    pub remote: Option<Arc<RemoteCapture>>,
}

pub use super::SkippedSegment;

/// A DataFusion session with every capture registered.
pub struct Catalog {
    /// The session: tables `profiles`, `samples`, `stacks`, `process`, `scrapes`, views
    /// `stack_info` and `sample_stacks`, and the leakscope SQL functions.
    pub ctx: SessionContext,
    /// The captures, in argument order.
    pub captures: Vec<Capture>,
    /// Segments left out because they are corrupt or do not read as their table.
    pub skipped: Vec<SkippedSegment>,
    /// The Ballista scheduler `ctx` runs on (`df://HOST:PORT`), or `None` in process.
    pub cluster: Option<String>,
    /// The same tables in this process, for reads of small tables (the profile listing,
    /// process memory): `ctx` itself unless on a cluster. A Ballista job costs tens of
    /// milliseconds of scheduling however little it reads, and `fleet rank --cluster` paid
    /// that three times per capture for tables of one row per profile.
    pub in_process: SessionContext,
}

/// Opens a capture directory (reads and checks the manifest).
pub fn open_capture(dir: &Path) -> Result<Capture> {
    let meta = std::fs::metadata(dir).map_err(|e| AnalyzeError::NotACapture {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(AnalyzeError::NotACapture {
            path: dir.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let manifest = Manifest::read(dir).map_err(|e| AnalyzeError::NotACapture {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let abs = std::fs::canonicalize(dir).map_err(|source| AnalyzeError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let name = abs
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture".into());
    Ok(Capture {
        name,
        dir: abs,
        manifest,
        remote: None,
    })
}

/// Checks that a segment's Parquet footer is readable and that its columns read as the
/// table's: the same types, or a lossless cast (see [`crate::sql::conform`]). A segment written
/// by another tool whose types differ has the columns that need it read once and checked
/// value by value (a negative Int64 `stack_id` cannot be a UInt64 id).
fn check_segment(path: &Path, table: Table) -> std::result::Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    // A footer whose lists declare more elements than it has bytes would keep the Parquet
    // crate busy for a quarter second or more per file (see `footer_check`).
    footer_check::check_file(&mut file)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    // The footer's embedded Arrow schema is not trusted (see scan::open).
    let options =
        parquet::arrow::arrow_reader::ArrowReaderOptions::new().with_skip_arrow_metadata(true);
    let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(file, options)
        .map_err(|e| format!("corrupt ({})", one_line(&e.to_string())))?;
    let want = table.schema();
    let (shape, check) = conform::judge(builder.schema(), &want)
        .map_err(|e| format!("not readable as a {} segment: {e}", table.name()))?;
    if shape == Shape::Same || check.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = check.iter().map(String::as_str).collect();
    let roots: Vec<usize> = names
        .iter()
        .filter_map(|c| builder.schema().index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let part = conform::project(&want, &names)?;
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| format!("corrupt ({})", one_line(&e.to_string())))?;
    for b in reader {
        let b = b.map_err(|e| format!("corrupt ({})", one_line(&e.to_string())))?;
        conform::conform(&b, &part)
            .map_err(|e| format!("not readable as a {} segment: {e}", table.name()))?;
    }
    Ok(())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Finds the segments of every table of every capture that cannot be read as the table
/// (corrupt, or foreign with types that do not cast losslessly), in parallel.
fn find_unreadable(captures: &[Capture]) -> Vec<SkippedSegment> {
    let files: Vec<(PathBuf, Table)> = captures
        .iter()
        .flat_map(|c| {
            Table::ALL
                .iter()
                .flat_map(|t| {
                    list_segments(&c.dir, *t)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|s| (s.path, *t))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let mut bad: Vec<SkippedSegment> = files
        .par_iter()
        .filter_map(|(p, t)| {
            check_segment(p, *t).err().map(|reason| SkippedSegment {
                path: p.clone(),
                reason,
            })
        })
        .collect();
    bad.sort_by(|a, b| a.path.cmp(&b.path));
    bad
}

/// Quotes an SQL identifier.
pub fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Quotes an SQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn unique_names(captures: &mut [Capture]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in captures.iter_mut() {
        let n = seen.entry(c.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            c.name = format!("{}#{}", c.name, n);
        }
    }
}

/// Opens `dirs` and registers them all in a new session.
pub async fn open(dirs: &[PathBuf], rules: &SiteRules) -> Result<Catalog> {
    if dirs.is_empty() {
        return Err(AnalyzeError::NotACapture {
            path: PathBuf::from("."),
            reason: "no capture given".into(),
        });
    }
    let mut captures = Vec::with_capacity(dirs.len());
    let mut remote_skipped = Vec::new();
    for d in dirs {
        if remote::is_remote(d) {
            let (cap, skipped) = open_remote(d).await?;
            captures.push(cap);
            remote_skipped.extend(skipped);
        } else {
            captures.push(open_capture(d)?);
        }
    }
    unique_names(&mut captures);
    // The session (DataFusion's registries of functions, formats and rules) is built on
    // its own thread while the footers are checked on the others: it needs neither, and
    // built after them it ran on one core. The time before the ranking starts (100M rows)
    // went from 25.1-36.9 ms to 22.7-27.3 ms, 6 alternating runs.
    let session = std::thread::spawn(|| {
        SessionContext::new_with_config(SessionConfig::new().with_information_schema(true))
    });
    let locals: Vec<Capture> = captures
        .iter()
        .filter(|c| c.remote.is_none())
        .cloned()
        .collect();
    let mut skipped = find_unreadable(&locals);
    skipped.extend(remote_skipped);
    // Files of incomplete segment sets (no commit marker) are hidden from SQL too, as
    // `list_segments` hides them from every other reader (it warns about each set).
    let incomplete: Vec<PathBuf> = locals
        .iter()
        .flat_map(|c| leakscope_capture::segment::incomplete_files(&c.dir).unwrap_or_default())
        .collect();
    let hidden: HashSet<object_store::path::Path> = skipped
        .iter()
        .map(|s| &s.path)
        .chain(&incomplete)
        .filter_map(|p| object_store::path::Path::from_filesystem_path(p).ok())
        .collect();

    let ctx = match session.join() {
        Ok(ctx) => ctx,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    let store = HidingStore::new(Arc::new(LocalFileSystem::new()), hidden.clone());
    let file_url = url::Url::parse("file://").expect("static URL");
    ctx.register_object_store(&file_url, Arc::new(store));
    let remotes: Vec<&RemoteCapture> = captures
        .iter()
        .filter_map(|c| c.remote.as_deref())
        .collect();
    remote::register_stores(&ctx, &remotes);
    udf::register(&ctx, rules);

    for (i, cap) in captures.iter().enumerate() {
        for table in Table::ALL {
            let name = format!("__c{i}_{}", table.name());
            match &cap.remote {
                None => register_listing(&ctx, &cap.dir, table, &name)?,
                Some(r) => {
                    let shown = cap.dir.join(table.name());
                    register_url(&ctx, r.table_url(table)?, &shown, table, &name)?
                }
            }
        }
    }
    for table in Table::ALL {
        // A capture without segments of this table adds no rows: leave it out of the
        // union, so every branch of the union reads files (Ballista's scheduler stalls a
        // sorted query over a union of a file scan and an empty scan). One branch stays
        // when no capture has the table, for its schema.
        let holding: Vec<usize> = (0..captures.len())
            .filter(|&i| may_have_rows(&captures[i], table, &hidden))
            .collect();
        let branches = if holding.is_empty() { vec![0] } else { holding };
        let union = branches
            .iter()
            .map(|&i| (i, &captures[i]))
            .map(|(i, c)| {
                format!(
                    "SELECT {} AS {CAPTURE_COLUMN}, * FROM {}",
                    literal(&c.name),
                    ident(&format!("__c{i}_{}", table.name()))
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        exec(&ctx, &format!("CREATE VIEW {} AS {union}", table.name())).await?;
    }
    for (name, sql) in VIEWS {
        exec(&ctx, &format!("CREATE VIEW {name} AS {sql}")).await?;
    }
    Ok(Catalog {
        in_process: ctx.clone(),
        ctx,
        captures,
        skipped,
        cluster: None,
    })
}

/// Whether capture `c` may hold rows of `table`: a remote capture always may (its
/// listing is not read here); a local one when a committed, readable segment exists.
fn may_have_rows(c: &Capture, table: Table, hidden: &HashSet<object_store::path::Path>) -> bool {
    if c.remote.is_some() {
        return true;
    }
    match list_segments(&c.dir, table) {
        Ok(files) => files.iter().any(|f| {
            object_store::path::Path::from_filesystem_path(&f.path)
                .map_or(true, |p| !hidden.contains(&p))
        }),
        Err(_) => true,
    }
}

/// The column every table view adds in front: the name of the capture a row came from.
pub const CAPTURE_COLUMN: &str = "capture";

/// Convenience views over the base tables (name, SQL).
pub const VIEWS: &[(&str, &str)] = &[
    (
        "stack_info",
        "SELECT stack_id, first_value(origin) AS origin, first_value(depth) AS depth, \
         leaf_function(first_value(frames)) AS leaf_function, \
         user_frame(first_value(frames)) AS site, \
         user_function(first_value(frames)) AS site_function, \
         render_stack(first_value(frames)) AS stack_text, \
         first_value(frames) AS frames \
         FROM stacks GROUP BY stack_id",
    ),
    (
        "sample_stacks",
        "SELECT s.*, i.leaf_function, i.site, i.site_function, i.stack_text \
         FROM samples s JOIN stack_info i ON s.stack_id = i.stack_id",
    ),
];

async fn exec(ctx: &SessionContext, sql: &str) -> Result<()> {
    ctx.sql(sql)
        .await
        .map_err(AnalyzeError::df(format!("registering views ({sql})")))?;
    Ok(())
}

fn register_listing(ctx: &SessionContext, dir: &Path, table: Table, name: &str) -> Result<()> {
    let table_dir = dir.join(table.name());
    // A URL built from the path, not parsed from its text: a directory name holding glob
    // characters (`[`, `*`, `?`) must not be read as a pattern.
    let dir_url =
        url::Url::from_directory_path(&table_dir).map_err(|()| AnalyzeError::NotACapture {
            path: table_dir.clone(),
            reason: "not an absolute path".into(),
        })?;
    register_url(ctx, dir_url, &table_dir, table, name)
}

/// Registers the listing table `name` of `table` over the directory URL `dir_url`
/// (`file://` or `s3://`), naming `table_dir` in errors.
fn register_url(
    ctx: &SessionContext,
    dir_url: url::Url,
    table_dir: &Path,
    table: Table,
    name: &str,
) -> Result<()> {
    let url = ListingTableUrl::try_new(dir_url.clone(), None).map_err(AnalyzeError::df(
        format!("{}: table path", table_dir.display()),
    ))?;
    let mut format = ParquetFormat::default();
    if dir_url.scheme() == "s3" {
        // DataFusion's default fetches the last 512 KiB of a file for its footer: a whole
        // segment of most captures. A capture's footers are a few KiB.
        format = format.with_metadata_size_hint(Some(remote::FOOTER_HINT));
    }
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(PARTITION_COLUMN.to_string(), DataType::Utf8)]);
    let config = ListingTableConfig::new(url)
        .with_listing_options(options)
        .with_schema(conform::relaxed(&table.schema()));
    let provider = ListingTable::try_new(config)
        .map_err(AnalyzeError::df(format!("{}: table", table_dir.display())))?;
    ctx.register_table(name, Arc::new(provider))
        .map_err(AnalyzeError::df(format!(
            "{}: register",
            table_dir.display()
        )))?;
    Ok(())
}

/// Opens a capture given as `s3://BUCKET/PREFIX` (see [`remote::open`]), with the segments
/// it leaves out.
async fn open_remote(arg: &Path) -> Result<(Capture, Vec<SkippedSegment>)> {
    let text = arg.to_string_lossy();
    let opened = remote::open(&text).await?;
    let url = &opened.capture.url;
    let name = url
        .prefix
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or(&url.bucket)
        .to_string();
    Ok((
        Capture {
            name,
            dir: PathBuf::from(url.to_string()),
            manifest: opened.manifest,
            remote: Some(Arc::clone(&opened.capture)),
        },
        opened.skipped,
    ))
}
