//! The object stores of the cluster's servers: a scheduler lists, and the executors read,
//! the segments of `s3://` captures through S3 stores built on demand, one per bucket, from
//! the server's own AWS environment and `--s3-endpoint` (as the client builds its own, see
//! [`crate::source::remote`]). Credentials never travel with a plan: every process of the
//! cluster needs read access to the buckets its clients name.
//!
//! DataFusion resolves a scan's `s3://BUCKET/` through the session's
//! [`ObjectStoreRegistry`]; Ballista's servers start with the default registry, which knows
//! only `file://`, and fail every S3 scan with "No suitable object store found".

use std::sync::{Arc, OnceLock};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::object_store::{DefaultObjectStoreRegistry, ObjectStoreRegistry};
use leakscope_capture::remote::RemoteUrl;
use object_store::ObjectStore;
use url::Url;

use crate::source::remote;

/// An object-store registry that builds an S3 store the first time a bucket is asked for
/// and keeps it; every other URL is resolved as DataFusion's default registry does.
#[derive(Debug, Default)]
pub struct S3OnDemand {
    known: DefaultObjectStoreRegistry,
}

impl S3OnDemand {
    /// A registry knowing the local file system, and S3 buckets once asked for.
    pub fn new() -> Self {
        Self::default()
    }
}

/// The registry every session of this process shares, so that each bucket's store (and its
/// connection pool) is built once, not once per query.
pub fn shared() -> Arc<S3OnDemand> {
    static SHARED: OnceLock<Arc<S3OnDemand>> = OnceLock::new();
    Arc::clone(SHARED.get_or_init(|| Arc::new(S3OnDemand::new())))
}

impl ObjectStoreRegistry for S3OnDemand {
    fn register_store(
        &self,
        url: &Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        self.known.register_store(url, store)
    }

    fn deregister_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        self.known.deregister_store(url)
    }

    fn get_store(&self, url: &Url) -> Result<Arc<dyn ObjectStore>> {
        match self.known.get_store(url) {
            Ok(store) => Ok(store),
            Err(_) if url.scheme() == "s3" && url.host_str().is_some_and(|h| !h.is_empty()) => {
                let bucket = RemoteUrl {
                    bucket: url.host_str().unwrap_or_default().to_string(),
                    prefix: String::new(),
                };
                let store = remote::store_for(&bucket)
                    .map_err(|e| DataFusionError::External(Box::new(e)))?;
                // Two tasks asking at once may both build one; either serves every read.
                self.known.register_store(url, Arc::clone(&store));
                Ok(store)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_one_store_per_bucket_and_leaves_other_schemes_alone() {
        let registry = S3OnDemand::new();
        let a = Url::parse("s3://bucket-a/").unwrap();
        let first = registry.get_store(&a).unwrap();
        let again = registry
            .get_store(&Url::parse("s3://bucket-a/some/prefix/x.parquet").unwrap())
            .unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the bucket's store is kept");
        let b = registry
            .get_store(&Url::parse("s3://bucket-b/").unwrap())
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &b), "each bucket has its own store");
        assert!(registry.get_store(&Url::parse("file:///").unwrap()).is_ok());
        assert!(registry
            .get_store(&Url::parse("gs://bucket/").unwrap())
            .is_err());
    }
}
