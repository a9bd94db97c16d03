//! [`Catalog`]: every configured backend, opened once, each with one pool shared by every store
//! that names it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrostack_config::{BackendFamily, KvStoreRef, StorageConfig};

use crate::error::{BackendDescription, Error};
use crate::kv::KvStore;
use crate::pool::{Backend, PoolStatus};
use crate::sql::Db;

/// How long [`Catalog::readiness`] waits for one backend to answer.
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// The storage backends of a run config. Cheap to clone (an `Arc` inside); clones share pools.
#[derive(Debug, Clone)]
pub struct Catalog {
    backends: Arc<BTreeMap<String, Arc<Backend>>>,
}

/// One backend's answer to a readiness ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// The backend's name.
    pub name: String,
    /// Its type (`kv_sqlite`, `sql_postgres`, ...).
    pub type_name: &'static str,
    /// Whether `SELECT 1` succeeded within [`READINESS_TIMEOUT`].
    pub ok: bool,
    /// Why not, when not.
    pub error: Option<String>,
    /// How long the ping took (or how long until it gave up).
    pub latency: Duration,
}

impl Catalog {
    /// Open every backend of `storage`: one pool each. PostgreSQL connections are made lazily,
    /// so this succeeds while the database is down; SQLite files (and their directories) are
    /// created here.
    pub async fn open(storage: &StorageConfig) -> Result<Catalog, Error> {
        let mut backends = BTreeMap::new();
        for (name, config) in &storage.backends {
            let backend = Backend::open(name, config).await?;
            tracing::debug!(backend = %backend.desc, "storage backend opened");
            backends.insert(name.clone(), Arc::new(backend));
        }
        Ok(Catalog { backends: Arc::new(backends) })
    }

    /// The configured backend names, sorted.
    pub fn backend_names(&self) -> Vec<String> {
        self.backends.keys().cloned().collect()
    }

    /// How a backend is described in messages (name, type, where it points).
    pub fn describe(&self, backend: &str) -> Result<BackendDescription, Error> {
        Ok(self.backend(backend)?.desc.as_ref().clone())
    }

    /// The state of a backend's pool.
    pub fn pool_status(&self, backend: &str) -> Result<PoolStatus, Error> {
        Ok(self.backend(backend)?.status())
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }

    fn backend(&self, name: &str) -> Result<&Arc<Backend>, Error> {
        self.backends
            .get(name)
            .ok_or_else(|| Error::UnknownBackend { name: name.to_owned(), available: self.backend_names() })
    }

    fn backend_of(&self, name: &str, wanted: BackendFamily) -> Result<&Arc<Backend>, Error> {
        let backend = self.backend(name)?;
        if backend.family != wanted {
            return Err(Error::WrongFamily {
                name: name.to_owned(),
                type_name: backend.desc.type_name,
                wanted,
                candidates: self.backends.iter().filter(|(_, b)| b.family == wanted).map(|(n, _)| n.clone()).collect(),
            });
        }
        Ok(backend)
    }

    /// The KV store a reference names: its `kv_*` backend, its namespace.
    pub fn kv(&self, reference: &KvStoreRef) -> Result<KvStore, Error> {
        let backend = self.backend_of(&reference.backend, BackendFamily::Kv)?;
        Ok(KvStore::new(Db::new(Arc::clone(backend)), &reference.namespace))
    }

    /// A handle on a `sql_*` backend.
    pub fn sql(&self, backend: &str) -> Result<Db, Error> {
        let backend = self.backend_of(backend, BackendFamily::Sql)?;
        Ok(Db::new(Arc::clone(backend)))
    }

    /// Ping every backend (`SELECT 1`), concurrently, each bounded by [`READINESS_TIMEOUT`];
    /// sorted by name.
    pub async fn readiness(&self) -> Vec<BackendStatus> {
        let mut pings = tokio::task::JoinSet::new();
        let mut names = HashMap::new();
        for backend in self.backends.values() {
            let desc = Arc::clone(&backend.desc);
            let backend = Arc::clone(backend);
            let handle = pings.spawn(async move {
                let started = Instant::now();
                let error = match tokio::time::timeout(READINESS_TIMEOUT, backend.ping()).await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(_) => Some(format!(
                        "storage backend {} did not answer within {} ms",
                        backend.desc,
                        READINESS_TIMEOUT.as_millis()
                    )),
                };
                BackendStatus {
                    name: backend.desc.name.clone(),
                    type_name: backend.desc.type_name,
                    ok: error.is_none(),
                    error,
                    latency: started.elapsed(),
                }
            });
            names.insert(handle.id(), desc);
        }
        let mut statuses = Vec::with_capacity(self.backends.len());
        while let Some(joined) = pings.join_next_with_id().await {
            match joined {
                Ok((_, status)) => statuses.push(status),
                Err(e) => {
                    if let Some(desc) = names.get(&e.id()) {
                        statuses.push(BackendStatus {
                            name: desc.name.clone(),
                            type_name: desc.type_name,
                            ok: false,
                            error: Some(format!("pinging storage backend {desc} failed: {e}")),
                            latency: READINESS_TIMEOUT,
                        });
                    }
                }
            }
        }
        statuses.sort_by(|a, b| a.name.cmp(&b.name));
        statuses
    }

    /// Close every pool: idle connections are closed now, connections in use when returned.
    /// Later operations fail with [`Error::Closed`]. Calling it again does nothing.
    pub async fn close(&self) {
        for backend in self.backends.values() {
            backend.close().await;
        }
    }
}
