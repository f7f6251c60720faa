//! Captures in object storage (feature `remote`): the `s3://BUCKET/PREFIX` URL, the S3
//! store built from the standard AWS environment, one-line error messages without
//! credentials, and the listing of a remote capture's committed segment sets.
//!
//! A remote capture holds the same relative paths below its prefix as a local capture
//! below its directory (`manifest.json`, `TABLE/date=D/STEM.parquet`,
//! `_commits/STEM.commit`; naming owned by [`crate::segment`]). A set is visible remotely
//! once its marker exists, and the recorder's uploader writes the marker last.
//!
//! Everything here is runtime-agnostic: the async functions need whatever runtime the
//! caller owns (the recorder's uploader runs a current-thread tokio runtime).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use futures_util::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectMeta, ObjectStore, RetryConfig};

use crate::manifest::MANIFEST_FILE;
use crate::schema::{Table, PARTITION_COLUMN};
use crate::segment::{marker_relpath, marker_stem, COMMITS_DIR};

/// Errors of remote captures; every message is one line, names the URL and holds no
/// credential.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// A malformed `s3://BUCKET/PREFIX` URL.
    #[error("{url}: {reason}")]
    BadUrl {
        /// The URL as given (it never holds credentials: those are refused).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed `--s3-endpoint` URL.
    #[error("--s3-endpoint {endpoint}: {reason}")]
    BadEndpoint {
        /// The endpoint, with any user info replaced by `***`.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store refused or failed a request (bad credentials, missing bucket, unreachable
    /// endpoint, ...).
    #[error("{url}: {reason}")]
    Store {
        /// The remote capture's URL.
        url: String,
        /// What the store said, on one line, credentials redacted.
        reason: String,
    },
}

/// A parsed `s3://BUCKET/PREFIX` URL: where a capture lives in object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the capture, without leading or trailing `/` (may be empty).
    pub prefix: String,
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl RemoteUrl {
    /// Parses `s3://BUCKET/PREFIX` (a trailing `/` is ignored; the prefix may be empty).
    /// Credentials, ports, queries and fragments are refused, as are bucket names outside
    /// S3's rules and empty, `.` or `..` path segments.
    pub fn parse(text: &str) -> Result<RemoteUrl, RemoteError> {
        let bad = |reason: &str| RemoteError::BadUrl {
            url: shown(text),
            reason: reason.to_string(),
        };
        let t = text.trim();
        let rest = t
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://BUCKET/PREFIX"))?;
        if t.chars().any(char::is_control) {
            return Err(bad("control character in the URL"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad(
                "a query or fragment is not allowed; expected s3://BUCKET/PREFIX",
            ));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.contains('@') {
            return Err(bad(
                "credentials do not belong in the URL; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if bucket.contains(':') {
            return Err(bad(
                "a port is not allowed; use --s3-endpoint for another server",
            ));
        }
        check_bucket_name(bucket).map_err(|r| bad(&r))?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for part in prefix.split('/') {
                if part.is_empty() || part == "." || part == ".." {
                    return Err(bad("empty, '.' or '..' path segment in the prefix"));
                }
            }
        }
        Ok(RemoteUrl {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The prefix as an object-store path (the root when empty).
    pub fn prefix_path(&self) -> ObjectPath {
        ObjectPath::from(self.prefix.as_str())
    }

    /// The object key of `rel` (a capture-relative, `/`-separated path such as
    /// `samples/date=2026-12-05/STEM.parquet`) below this URL's prefix.
    pub fn key(&self, rel: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(rel)
        } else {
            ObjectPath::from(format!("{}/{rel}", self.prefix))
        }
    }

    /// The `s3://` URL of `rel` below this prefix, for messages.
    pub fn url_of(&self, rel: &str) -> String {
        format!("{self}/{rel}")
    }
}

/// Checks S3's bucket naming rules: 3–63 characters of lowercase letters, digits, `.` and
/// `-`, starting and ending with a letter or digit.
fn check_bucket_name(b: &str) -> Result<(), String> {
    if b.is_empty() {
        return Err("missing bucket; expected s3://BUCKET/PREFIX".into());
    }
    let ok_chars = b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    let ok_ends = b.starts_with(|c: char| c.is_ascii_alphanumeric())
        && b.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(3..=63).contains(&b.len()) || !ok_chars || !ok_ends {
        return Err(format!(
            "invalid bucket name {b:?} (3-63 lowercase letters, digits, '.' or '-')"
        ));
    }
    Ok(())
}

/// An `--s3-endpoint`: the base URL of an S3-compatible server (plain `http://` allowed,
/// path-style addressing).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint(String);

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Endpoint({})", self.0)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Endpoint {
    /// Parses `http(s)://HOST[:PORT][/PATH]`; user info, queries and fragments are refused
    /// (credentials come from the AWS environment only).
    pub fn parse(text: &str) -> Result<Endpoint, RemoteError> {
        let bad = |reason: &str| RemoteError::BadEndpoint {
            endpoint: shown(text),
            reason: reason.to_string(),
        };
        let t = text.trim().trim_end_matches('/');
        let rest = t
            .strip_prefix("http://")
            .or_else(|| t.strip_prefix("https://"))
            .ok_or_else(|| bad("expected http://HOST:PORT or https://HOST"))?;
        if t.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("control character or space in the URL"));
        }
        let authority = rest.split('/').next().unwrap_or("");
        if authority.contains('@') {
            return Err(bad(
                "credentials do not belong in the endpoint; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            ));
        }
        if authority.is_empty() || authority.starts_with(':') {
            return Err(bad("missing host"));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment is not allowed"));
        }
        if let Some((_, port)) = authority
            .rsplit_once(':')
            .filter(|_| !authority.ends_with(']'))
        {
            if port.parse::<u16>().is_err() {
                return Err(bad(&format!("invalid port {port:?}")));
            }
        }
        Ok(Endpoint(t.to_string()))
    }

    /// True for a plain-HTTP endpoint.
    pub fn is_http(&self) -> bool {
        self.0.starts_with("http://")
    }
}

/// A URL-like text as shown in messages: user info redacted, control characters escaped.
fn shown(text: &str) -> String {
    redact_userinfo(text)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Replaces user info (`user:password@`) in a URL-like text by `***@`.
fn redact_userinfo(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (format!("{s}://"), r),
        None => (String::new(), text),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}***{}", &rest[at..]),
        None => text.to_string(),
    }
}

/// Builds the S3 store for `url` from the standard AWS environment
/// (`AmazonS3Builder::from_env`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, ..., then web
/// identity, container and instance credentials), with `endpoint` overriding the server
/// (plain HTTP allowed, path-style requests). Requests time out (connect 5 s, request
/// 60 s) and are retried twice within 10 s by the store itself.
pub fn build_s3(url: &RemoteUrl, endpoint: Option<&Endpoint>) -> Result<AmazonS3, RemoteError> {
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(&url.bucket)
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60)),
        );
    if let Some(e) = endpoint {
        b = b
            .with_endpoint(e.to_string())
            .with_allow_http(e.is_http())
            .with_virtual_hosted_style_request(false);
    }
    b.build().map_err(|e| RemoteError::Store {
        url: url.to_string(),
        reason: describe(&e),
    })
}

/// Checks with one cheap request (a listing of at most one level below the prefix) that
/// the bucket exists and the credentials may read it: bad credentials, a missing bucket or
/// an unreachable endpoint fail here, before anything is written.
pub async fn check_access(store: &dyn ObjectStore, url: &RemoteUrl) -> Result<(), RemoteError> {
    store
        .list_with_delimiter(Some(&url.prefix_path()))
        .await
        .map(|_| ())
        .map_err(|e| store_error(url, &e))
}

/// A store error as a [`RemoteError::Store`] naming `url`.
pub fn store_error(url: &RemoteUrl, e: &object_store::Error) -> RemoteError {
    RemoteError::Store {
        url: url.to_string(),
        reason: describe(e),
    }
}

/// An object-store error on one line: the S3 error code and message when the server sent
/// one (`InvalidAccessKeyId: ...`), else the error chain; the values of the
/// AWS credential variables are replaced by `***` wherever they appear.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !chain.contains(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        source = s.source();
    }
    let summary = match (xml_tag(&chain, "Code"), xml_tag(&chain, "Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        (None, _) => chain,
    };
    redact_credentials(&one_line(&summary))
}

/// The text of the first `<TAG>...</TAG>` in `s`.
fn xml_tag(s: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = s.find(&open)? + open.len();
    let end = s[start..].find(&format!("</{tag}>"))? + start;
    Some(s[start..end].trim().to_string()).filter(|t| !t.is_empty())
}

fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Replaces the values of the AWS credential variables in `text` by `***` (the access key
/// id too: S3 echoes it in some error bodies).
pub fn redact_credentials(text: &str) -> String {
    let mut out = text.to_string();
    for var in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ACCESS_KEY_ID",
    ] {
        if let Ok(v) = std::env::var(var) {
            if v.len() >= 4 {
                out = out.replace(&v, "***");
            }
        }
    }
    out
}

/// One committed segment set of a remote capture.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSet {
    /// The stem shared by the set's files.
    pub stem: String,
    /// The set's data files (`TABLE/date=D/STEM.parquet`), in table order.
    pub files: Vec<ObjectMeta>,
    /// The set's commit marker (`_commits/STEM.commit`).
    pub marker: ObjectMeta,
}

/// What a remote capture prefix holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteListing {
    /// `manifest.json`, when present.
    pub manifest: Option<ObjectMeta>,
    /// The committed sets (with a marker), oldest first.
    pub committed: Vec<RemoteSet>,
    /// Stems of data files without a marker: a set being uploaded right now, or one whose
    /// upload was interrupted (the next upload completes it). Readers ignore them.
    pub incomplete: Vec<String>,
}

impl RemoteListing {
    /// Every data file of the committed sets (what a reader should read), oldest first.
    pub fn committed_files(&self) -> impl Iterator<Item = &ObjectMeta> {
        self.committed.iter().flat_map(|s| s.files.iter())
    }
}

/// What a capture-relative path is, by the capture's naming rules.
enum Entry<'a> {
    Manifest,
    Marker(&'a str),
    Data(Table, &'a str),
    Other,
}

fn classify(rel: &str) -> Entry<'_> {
    let parts: Vec<&str> = rel.split('/').collect();
    match parts.as_slice() {
        [m] if *m == MANIFEST_FILE => Entry::Manifest,
        [dir, name] if *dir == COMMITS_DIR => marker_stem(name).map_or(Entry::Other, Entry::Marker),
        [table, part, name] => {
            let table = Table::ALL.into_iter().find(|t| t.name() == *table);
            let stem = name
                .strip_suffix(".parquet")
                .filter(|s| !s.is_empty() && !name.starts_with('.'));
            match (table, stem) {
                (Some(t), Some(stem)) if part.starts_with(&format!("{PARTITION_COLUMN}=")) => {
                    Entry::Data(t, stem)
                }
                _ => Entry::Other,
            }
        }
        _ => Entry::Other,
    }
}

/// Lists the capture below `url`'s prefix in `store`: its manifest, its committed segment
/// sets (those with a marker `_commits/STEM.commit`, the same rule as for a local capture)
/// and the stems of incomplete ones. What the analyzer needs to read a capture in object
/// storage: read `committed_files()`, never a plain listing.
pub async fn list_remote_capture(
    store: &dyn ObjectStore,
    url: &RemoteUrl,
) -> Result<RemoteListing, RemoteError> {
    let prefix = url.prefix_path();
    let objects: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| store_error(url, &e))?;
    let mut listing = RemoteListing::default();
    let mut markers: BTreeMap<String, ObjectMeta> = BTreeMap::new();
    let mut data: BTreeMap<String, Vec<(Table, ObjectMeta)>> = BTreeMap::new();
    for meta in objects {
        let Some(rel) = relative(&prefix, &meta.location) else {
            continue;
        };
        match classify(&rel) {
            Entry::Manifest => listing.manifest = Some(meta),
            Entry::Marker(stem) => {
                markers.insert(stem.to_string(), meta);
            }
            Entry::Data(t, stem) => data.entry(stem.to_string()).or_default().push((t, meta)),
            Entry::Other => {}
        }
    }
    for (stem, mut files) in data {
        match markers.remove(&stem) {
            Some(marker) => {
                files.sort_by_key(|(t, m)| {
                    (Table::ALL.iter().position(|x| x == t), m.location.clone())
                });
                listing.committed.push(RemoteSet {
                    stem,
                    files: files.into_iter().map(|(_, m)| m).collect(),
                    marker,
                });
            }
            None => listing.incomplete.push(stem),
        }
    }
    // A marker without data files: a set with no rows cannot be committed, so this is a
    // set whose files were deleted by hand; it holds nothing to read.
    listing.committed.sort_by(|a, b| a.stem.cmp(&b.stem));
    Ok(listing)
}

/// Lists only the stems whose commit marker exists below `url`'s prefix (one listing of
/// `_commits/`): the sets that are completely in the store.
pub async fn remote_committed_stems(
    store: &dyn ObjectStore,
    url: &RemoteUrl,
) -> Result<Vec<String>, RemoteError> {
    let commits = url.key(COMMITS_DIR);
    let objects: Vec<ObjectMeta> = store
        .list(Some(&commits))
        .try_collect()
        .await
        .map_err(|e| store_error(url, &e))?;
    let mut stems: Vec<String> = objects
        .iter()
        .filter_map(|m| {
            m.location
                .filename()
                .and_then(marker_stem)
                .map(str::to_string)
        })
        .collect();
    stems.sort();
    Ok(stems)
}

/// The key of set `stem`'s commit marker below `url`'s prefix.
pub fn marker_key(url: &RemoteUrl, stem: &str) -> ObjectPath {
    url.key(&marker_relpath(stem))
}

/// `location` relative to `prefix`, `/`-separated; None when outside it.
fn relative(prefix: &ObjectPath, location: &ObjectPath) -> Option<String> {
    let parts: Vec<String> = location
        .prefix_match(prefix)?
        .map(|p| p.as_ref().to_string())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls_and_refuses_malformed_ones_on_one_line() {
        let u = RemoteUrl::parse("s3://my-bucket/caps/api/").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("my-bucket", "caps/api")
        );
        assert_eq!(u.to_string(), "s3://my-bucket/caps/api");
        assert_eq!(
            u.key("_commits/x.commit").as_ref(),
            "caps/api/_commits/x.commit"
        );
        let root = RemoteUrl::parse("s3://bkt").unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.key("manifest.json").as_ref(), "manifest.json");
        for bad in [
            "http://bucket/x",
            "s3://",
            "s3:///x",
            "s3://AB/x",
            "s3://b/x",
            "s3://bucket-/x",
            "s3://key:secret@bucket/x",
            "s3://bucket:9000/x",
            "s3://bucket/a//b",
            "s3://bucket/../b",
            "s3://bucket/x?versionId=1",
            "s3://bucket/x\ny",
        ] {
            let e = RemoteUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains('\n') && !e.contains("secret"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn endpoints_refuse_credentials_and_garbage() {
        let e = Endpoint::parse("http://127.0.0.1:9000/").unwrap();
        assert!(e.is_http());
        assert_eq!(e.to_string(), "http://127.0.0.1:9000");
        assert!(!Endpoint::parse("https://s3.example.com").unwrap().is_http());
        for bad in [
            "127.0.0.1:9000",
            "ftp://h",
            "http://",
            "http://u:hunter2@h:1",
            "http://h:port",
            "http://h:1?x",
        ] {
            let e = Endpoint::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("hunter2") && !e.contains('\n'), "{bad:?}: {e}");
        }
    }

    #[test]
    fn store_errors_keep_the_s3_code_and_lose_the_body() {
        let e = std::io::Error::other(
            "Client error with status 403 Forbidden: <?xml version=\"1.0\"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>",
        );
        assert_eq!(
            describe(&e),
            "InvalidAccessKeyId: The AWS Access Key Id you provided does not exist in our records."
        );
    }

    #[test]
    fn capture_paths_are_classified_by_the_capture_naming() {
        assert!(matches!(classify("manifest.json"), Entry::Manifest));
        assert!(matches!(
            classify(&marker_relpath("20261205T000000.000Z-000000-ab")),
            Entry::Marker("20261205T000000.000Z-000000-ab")
        ));
        assert!(matches!(
            classify("samples/date=2026-12-05/S.parquet"),
            Entry::Data(Table::Samples, "S")
        ));
        for other in [
            "samples/date=2026-12-05/.S.parquet.tmp",
            "nope/date=2026-12-05/S.parquet",
            "_commits/.x.commit",
            "samples/S.parquet",
        ] {
            assert!(matches!(classify(other), Entry::Other), "{other}");
        }
    }
}
