//! The cache as a read-through cache: how other Rust programs read Jira, at
//! cache speed when the cache is warm and without stampeding the API when
//! entries expire.
//!
//! Open a [`ReadThrough`] handle for a profile and ask it for values:
//! - [`ReadThrough::get`] reads the cache only and says how fresh the value
//!   is ([`CachedValue`]: [`Freshness`] and age);
//! - [`ReadThrough::get_or_fetch`] returns a fresh value, fetching, storing
//!   and returning it with your fetch function when the cache has none;
//! - the typed look-ups ([`ReadThrough::project`], [`ReadThrough::field_id`],
//!   [`ReadThrough::user`], [`ReadThrough::user_by_name`],
//!   [`ReadThrough::issue`]) do the same with the Jira client, under the keys
//!   the warm stages write (`CONVENTIONS.md`, "Categories and keys").
//!
//! What it guarantees:
//! - **Single flight.** Concurrent callers of one handle (and its clones)
//!   asking for the same missing or expired key share one upstream fetch and
//!   all get its result, errors included. Clone the handle rather than open
//!   a second one: two handles are two flights.
//! - **Early refresh (XFetch).** Each entry stored by a read records how long
//!   its fetch took (δ); a read of a fresh entry refreshes it early when
//!   `now − β·δ·ln(r) ≥ expiry`, `r` uniform in (0, 1], β
//!   ([`ReadOptions::beta`], default 1). Expiries of busy entries spread out
//!   instead of all landing at once ([`EarlyRefresh`]). The caller that draws
//!   the early refresh waits for it; the others keep reading the cached value.
//! - **Across processes.** Before it fetches, a handle takes a short lease
//!   on the key in the cache file ([`ReadOptions::lease_ttl`], default 20 s).
//!   A handle that finds the lease taken by another process does not fetch:
//!   - if its value is still fresh (an early refresh), it returns it at once;
//!   - otherwise it polls the cache for up to [`ReadOptions::lease_wait`]
//!     (default 3 s) and returns the other process's value when it lands;
//!   - if the other process gives its lease up without storing a value, it
//!     takes the lease and fetches itself;
//!   - when the wait runs out, it serves its stale value if it has one within
//!     `max_stale` ([`Origin::StaleWhileRefreshing`]), and otherwise fetches
//!     anyway, without the lease: at most one extra fetch per waiting
//!     process, never a failure because someone else is slow.
//! - **Serve stale on error.** When the refetch fails and a stale value
//!   expired no longer than `max_stale` ago (profile, default `1d`), it is
//!   returned marked stale ([`Origin::StaleAfterError`]) instead of failing;
//!   beyond that the read fails with [`ReadError::TooStale`]. A failed early
//!   refresh returns the still-fresh value.
//!
//! Values are the JSON text as Jira sent it; [`CachedValue::json`] decodes
//! it. Reads are counted in the cache's hit, stale-hit and miss figures, as
//! `cache_status` shows them. The library never prints; it logs through
//! `tracing`, never a credential.
//!
//! ```
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jira = fake_jira::FakeJira::builder(fake_jira::Flavor::Cloud).start();
//! # let dir = tempfile::tempdir()?;
//! # let toml = format!(
//! #     "[profiles.doc]\nurl = \"{}\"\ndeployment = \"cloud\"\nemail = \"bot@example.com\"\ncache_dir = \"{}\"\n",
//! #     jira.url(),
//! #     dir.path().display()
//! # );
//! # let env = jira_cache::profile::Env::from_pairs([("JIRA_API_TOKEN", "cloud-token-123")]);
//! # let profile =
//! #     jira_cache::profile::parse_str(&toml, &dir.path().join("profiles.toml"), None, &env)?;
//! use jira_cache::read::ReadThrough;
//!
//! // `profile` comes from `jira_cache::profile::load`, as the binaries load it.
//! let cache = ReadThrough::open(&profile)?;
//!
//! // The first read fetches from Jira and stores; the next is a cache hit.
//! let alpha = cache.project("ALPHA").await?.expect("ALPHA exists");
//! assert!(alpha.is_fresh());
//! let name: String = alpha.json::<serde_json::Value>()?["name"]
//!     .as_str()
//!     .unwrap_or_default()
//!     .to_string();
//! assert_eq!(name, "Alpha");
//! assert!(cache.project("ALPHA").await?.is_some());
//! # assert_eq!(jira.count_path("/rest/api/3/project/ALPHA"), 1);
//!
//! // A field's id by its name, from the cached list of fields.
//! let points = cache.field_id("Story Points").await?;
//! assert_eq!(points.as_deref(), Some("customfield_10010"));
//! # Ok(())
//! # }
//! ```

mod error;
mod expiry;
mod lease;
mod resources;
mod single_flight;
mod xfetch;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::cache::{Cache, CacheReader, CacheWriter, CachedEntry, Freshness};
use crate::jira::{JiraClient, RetryPolicy};
use crate::profile::{DEFAULT_ISSUE_FIELDS, Profile, Ttls};
use crate::{Category, Deployment};

pub use error::{FetchError, ReadError};
pub use single_flight::SingleFlight;
pub use xfetch::EarlyRefresh;

use lease::{LeaseGuard, LeaseTable};

/// The default time to live of a lease.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(20);
/// The default wait for another process's refetch.
pub const DEFAULT_LEASE_WAIT: Duration = Duration::from_secs(3);
/// The default interval at which a waiting caller looks at the cache again.
pub const DEFAULT_LEASE_POLL: Duration = Duration::from_millis(50);
/// The default `max_stale` of a handle opened without a profile.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(86_400);

/// How a [`ReadThrough`] handle behaves. [`ReadOptions::from_profile`] takes
/// the profile's TTLs, `max_stale` and issue fields, and the defaults for
/// the rest.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// How long a fetched value stays fresh, per category.
    pub ttl: Ttls,
    /// How long past its expiry a value may still be served when its
    /// refetch fails (profile `max_stale`, default 1 day).
    pub max_stale: Duration,
    /// β of the early-refresh rule (default 1; 0 turns early refresh off).
    pub beta: f64,
    /// How long a lease holds another process off the key; longer than a
    /// fetch takes, retries included (default 20 s). A holder that dies
    /// holds others off at most this long.
    pub lease_ttl: Duration,
    /// How long a caller that finds the key leased by another process waits
    /// for that process's value (default 3 s).
    pub lease_wait: Duration,
    /// How often the waiting caller looks (default 50 ms).
    pub lease_poll: Duration,
    /// The fields [`ReadThrough::issue`] asks for (profile `issue_fields`);
    /// `updated` and `project` are always added.
    pub issue_fields: Vec<String>,
    /// The retry policy of the client a profile's handle builds.
    pub retry: RetryPolicy,
    /// Seed of the early-refresh draws, for reproducible tests; `None`
    /// seeds from the operating system.
    pub seed: Option<u64>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            ttl: Ttls::default(),
            max_stale: DEFAULT_MAX_STALE,
            beta: 1.0,
            lease_ttl: DEFAULT_LEASE_TTL,
            lease_wait: DEFAULT_LEASE_WAIT,
            lease_poll: DEFAULT_LEASE_POLL,
            issue_fields: DEFAULT_ISSUE_FIELDS.map(String::from).to_vec(),
            retry: RetryPolicy::default(),
            seed: None,
        }
    }
}

impl ReadOptions {
    /// The profile's TTLs, `max_stale` and issue fields, with the defaults
    /// for the rest.
    pub fn from_profile(profile: &Profile) -> ReadOptions {
        ReadOptions {
            ttl: profile.ttl,
            max_stale: profile.max_stale,
            issue_fields: profile.issue_fields.clone(),
            ..ReadOptions::default()
        }
    }
}

/// Where a [`CachedValue`] came from.
#[derive(Debug, Clone)]
pub enum Origin {
    /// The cache (written by a warm, an earlier read, or another process
    /// this read waited for).
    Cache,
    /// Fetched from Jira by this read, or by a concurrent read of the same
    /// handle it shared the fetch with.
    Fetched,
    /// Stale: another process was refetching it and had not finished
    /// within [`ReadOptions::lease_wait`].
    StaleWhileRefreshing,
    /// Stale: the refetch failed with this error.
    StaleAfterError(FetchError),
}

/// A value read through the cache, with how fresh it is.
#[derive(Debug, Clone)]
pub struct CachedValue {
    /// The JSON text exactly as Jira sent it.
    pub value: String,
    /// Fresh or stale, at the time of the read.
    pub freshness: Freshness,
    /// Time since it was fetched, at the time of the read.
    pub age: Duration,
    /// When it was fetched, unix ms.
    pub fetched_at: i64,
    /// When it stops (or stopped) being fresh, unix ms.
    pub expires_at: i64,
    /// Where it came from.
    pub origin: Origin,
}

impl CachedValue {
    fn from_entry(entry: &CachedEntry, now_ms: i64, origin: Origin) -> CachedValue {
        Self::from_owned(entry.clone(), now_ms, origin)
    }

    /// [`Self::from_entry`] without copying the value (the read path's
    /// hit, where the entry is not needed after).
    fn from_owned(entry: CachedEntry, now_ms: i64, origin: Origin) -> CachedValue {
        CachedValue {
            freshness: entry.freshness(now_ms),
            value: entry.value,
            age: Duration::from_millis(
                u64::try_from(now_ms.saturating_sub(entry.fetched_at)).unwrap_or(0),
            ),
            fetched_at: entry.fetched_at,
            expires_at: entry.expires_at,
            origin,
        }
    }

    /// Whether the value was fresh when read.
    pub fn is_fresh(&self) -> bool {
        self.freshness == Freshness::Fresh
    }

    /// The value decoded from its JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.value)
    }
}

/// Where a handle fetches from.
enum Upstream {
    /// Nowhere: only [`ReadThrough::get_or_fetch`] with the caller's fetch.
    None,
    /// A client the caller built.
    Client(JiraClient),
    /// A profile's site, connected on the first fetch.
    Profile {
        profile: Box<Profile>,
        client: tokio::sync::OnceCell<JiraClient>,
    },
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::None => f.write_str("None"),
            Upstream::Client(c) => f.debug_tuple("Client").field(c).finish(),
            Upstream::Profile { profile, .. } => f
                .debug_struct("Profile")
                .field("name", &profile.name)
                .field("url", &profile.url.as_str())
                .finish_non_exhaustive(),
        }
    }
}

/// The read-through cache of one profile. Cheap to clone; clones share the
/// connections, the writer thread and the flights under way.
#[derive(Debug, Clone)]
pub struct ReadThrough {
    inner: Arc<Inner>,
}

type FlightKey = (Category, String);

#[derive(Debug)]
struct Inner {
    cache: Cache,
    reader: Mutex<CacheReader>,
    writer: CacheWriter,
    leases: LeaseTable,
    flights: SingleFlight<FlightKey, Result<CachedValue, ReadError>>,
    early: EarlyRefresh,
    rng: Mutex<StdRng>,
    options: ReadOptions,
    upstream: Upstream,
}

/// What waiting for another process's refetch came to.
enum Waited {
    /// It stored a value.
    Stored(CachedEntry),
    /// It gave its lease up without a new value: this caller holds it now.
    Leased(LeaseGuard),
    /// It did not finish within the wait.
    TimedOut,
}

impl ReadThrough {
    /// Opens (creating and migrating if needed) the cache of `profile`,
    /// `<cache_dir>/<profile>.sqlite3`, with [`ReadOptions::from_profile`].
    ///
    /// Nothing is sent to Jira until a read needs a fetch: the client is
    /// built then (probing `serverInfo` if the profile states no deployment
    /// and no earlier warm remembered it), so a program whose reads are all
    /// cache hits works without a token or a network.
    pub fn open(profile: &Profile) -> Result<ReadThrough, ReadError> {
        Self::open_with(profile, ReadOptions::from_profile(profile))
    }

    /// [`ReadThrough::open`] with other options.
    pub fn open_with(profile: &Profile, options: ReadOptions) -> Result<ReadThrough, ReadError> {
        let upstream = Upstream::Profile {
            profile: Box::new(profile.clone()),
            client: tokio::sync::OnceCell::new(),
        };
        let location = profile
            .cache_location()
            .map_err(|e| ReadError::Connect(Arc::new(crate::site::ConnectError::Profile(e))))?;
        Self::build(location, upstream, options)
    }

    /// Opens the cache file at `cache_path`, fetching with `client` (a
    /// program that already has one, or a test against a fake Jira).
    pub fn with_client(
        cache_path: impl Into<crate::cache::CacheLocation>,
        client: JiraClient,
        options: ReadOptions,
    ) -> Result<ReadThrough, ReadError> {
        Self::build(cache_path, Upstream::Client(client), options)
    }

    /// Opens the cache file at `cache_path` with no Jira site: [`Self::get`]
    /// and [`Self::get_or_fetch`] with your own fetch work; the typed
    /// look-ups can only return what is cached (a miss fails).
    pub fn without_site(
        cache_path: impl Into<crate::cache::CacheLocation>,
        options: ReadOptions,
    ) -> Result<ReadThrough, ReadError> {
        Self::build(cache_path, Upstream::None, options)
    }

    fn build(
        cache_path: impl Into<crate::cache::CacheLocation>,
        upstream: Upstream,
        options: ReadOptions,
    ) -> Result<ReadThrough, ReadError> {
        let cache = Cache::open(cache_path)?;
        let rng = match options.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Ok(ReadThrough {
            inner: Arc::new(Inner {
                reader: Mutex::new(cache.reader()?),
                writer: cache.writer()?,
                leases: LeaseTable::new(cache.leases()?),
                cache,
                flights: SingleFlight::new(),
                early: EarlyRefresh::new(options.beta),
                rng: Mutex::new(rng),
                options,
                upstream,
            }),
        })
    }

    /// The cache file (for PostgreSQL, the database as messages name it).
    pub fn cache_path(&self) -> &Path {
        self.inner.cache.path()
    }

    /// Where the cache lives: the SQLite file or the PostgreSQL database.
    pub fn cache_location(&self) -> crate::cache::CacheLocation {
        self.inner.cache.location()
    }

    /// The options in force.
    pub fn options(&self) -> &ReadOptions {
        &self.inner.options
    }

    /// Reads the cache only: the value under `key`, fresh or stale, or
    /// `None`. Counted as a hit, stale hit or miss.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use jira_cache::Category;
    /// use jira_cache::read::{ReadOptions, ReadThrough};
    ///
    /// let cache = ReadThrough::without_site(dir.path().join("c.sqlite3"), ReadOptions::default())?;
    /// assert!(cache.get(Category::Project, "PROJ")?.is_none());
    /// # Ok(())
    /// # }
    /// ```
    pub fn get(&self, category: Category, key: &str) -> Result<Option<CachedValue>, ReadError> {
        let now = now_ms();
        Ok(self
            .inner
            .read_counted(category, key, now)?
            .map(|e| CachedValue::from_owned(e, now, Origin::Cache)))
    }

    /// Returns the value under `key` if it is fresh; otherwise (missing,
    /// expired, or due for an early refresh) runs `fetch`, stores what it
    /// returns (the JSON text of one value) with the category's TTL and the
    /// fetch's duration, and returns it. See the module docs for how
    /// concurrent callers, other processes and failures are handled.
    ///
    /// ```
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// use jira_cache::Category;
    /// use jira_cache::read::{Origin, ReadOptions, ReadThrough};
    ///
    /// let cache = ReadThrough::without_site(dir.path().join("c.sqlite3"), ReadOptions::default())?;
    /// let fetch = || async { Ok::<_, std::io::Error>(r#"{"key":"PROJ","name":"Project"}"#.to_string()) };
    /// let first = cache.get_or_fetch(Category::Project, "PROJ", fetch).await?;
    /// assert!(matches!(first.origin, Origin::Fetched));
    ///
    /// // Fresh now: the fetch is not called again.
    /// let again = cache
    ///     .get_or_fetch(Category::Project, "PROJ", || async {
    ///         Err::<String, _>(std::io::Error::other("not called"))
    ///     })
    ///     .await?;
    /// assert!(matches!(again.origin, Origin::Cache));
    /// assert_eq!(again.value, first.value);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_fetch<F, Fut, E>(
        &self,
        category: Category,
        key: &str,
        fetch: F,
    ) -> Result<CachedValue, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, E>>,
        E: std::error::Error + Send + Sync + 'static,
    {
        self.read_through(category, key, || async move {
            fetch().await.map_err(|e| Arc::new(e) as FetchError)
        })
        .await
    }

    /// Counts a fresh hit of `key`, as [`Self::get`] would have, for a
    /// caller that answered from its own in-memory copy of an entry this
    /// handle's cache holds (`cache_serve`'s hot answers), so every read
    /// still counts in the persisted figures.
    pub fn count_hit(&self, category: Category, key: &str) {
        self.inner
            .reader()
            .count_read(category, key, Some(Freshness::Fresh), now_ms());
    }

    /// Counts `n` fresh hits of `key`, the latest at `at_ms` (unix ms), as
    /// `n` calls of [`Self::count_hit`] would: for a caller that tallies
    /// its in-memory answers itself and hands the tallies over off the
    /// request path. May write the batch of counts, as any read may.
    pub fn count_hits(&self, category: Category, key: &str, n: u64, at_ms: i64) {
        self.inner
            .reader()
            .count_reads(category, key, Some(Freshness::Fresh), n, at_ms);
    }

    /// Finishes the cache writes queued (of every clone of this read
    /// path), closes the writer's connection (its last checkpoint) and
    /// waits for that: a server that returned before its writer thread
    /// ended left the `-wal` and `-shm` behind at exit. Writes after this
    /// fail.
    pub async fn close_writer(&self) -> Result<(), ReadError> {
        self.inner.writer.clone().shutdown().await?;
        Ok(())
    }

    /// Writes the counted reads to the cache file now (they are otherwise
    /// written in batches, and when the last clone is dropped). Returns
    /// `false` if the database was busy; the counts are kept for later.
    pub fn flush_read_counts(&self) -> Result<bool, ReadError> {
        Ok(self.inner.reader().flush_read_counts()?)
    }

    /// Stores values that came from the site in answer to a request other
    /// than a read of this handle (e.g. the issues of a search answer that
    /// `cache_serve` passed on), as a fetch of a read would: the category's
    /// TTL (for issues by their `updated`). No fetch time is known, so they
    /// are not refreshed early, only at expiry.
    pub async fn store_fetched(
        &self,
        category: Category,
        values: Vec<(String, String)>,
    ) -> Result<(), ReadError> {
        if values.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let ttl = &self.inner.options.ttl;
        let entries = values
            .into_iter()
            .map(|(key, value)| expiry::new_entry(category, &key, value, now, 0, ttl))
            .collect();
        self.inner.writer.put_page(entries).await?;
        Ok(())
    }

    /// Deletes the entries of `category` whose key matches the GLOB
    /// `pattern`, because a write made them wrong; returns how many. The
    /// next read fetches them anew.
    pub async fn invalidate(&self, category: Category, pattern: &str) -> Result<u64, ReadError> {
        Ok(self
            .inner
            .writer
            .remove(Some(category), Some(pattern.to_string()), false)
            .await?)
    }

    /// Brings the cache under `max_bytes` as a warm's end does (expired
    /// entries first, then the least recently read), if it is over: for a
    /// long-lived reader whose fetches keep adding entries (`cache_serve`).
    /// `None` when it was under.
    pub async fn enforce_max_size(
        &self,
        max_bytes: u64,
    ) -> Result<Option<crate::cache::EvictionOutcome>, ReadError> {
        let this = self.clone();
        let total =
            match tokio::task::spawn_blocking(move || this.inner.reader().total_bytes()).await {
                Ok(total) => total?,
                // The count panicked or was cancelled: try again next time.
                Err(_) => return Ok(None),
            };
        if total <= max_bytes {
            return Ok(None);
        }
        let now = chrono::Utc::now().timestamp_millis();
        Ok(Some(
            self.inner.writer.enforce_max_size(max_bytes, now).await?,
        ))
    }

    /// [`Self::get_or_fetch`] with the error already shared.
    async fn read_through<F, Fut>(
        &self,
        category: Category,
        key: &str,
        fetch: F,
    ) -> Result<CachedValue, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, FetchError>>,
    {
        let inner = &*self.inner;
        let now = now_ms();
        let seen_at = match inner.read_counted(category, key, now)? {
            Some(entry) if now < entry.expires_at && !inner.refresh_early(&entry, now) => {
                return Ok(CachedValue::from_owned(entry, now, Origin::Cache));
            }
            seen => seen.map(|e| e.fetched_at),
        };
        inner
            .flights
            .run((category, key.to_string()), || {
                inner.refresh(category, key, seen_at, fetch)
            })
            .await
    }

    /// The Jira client, connecting to the profile's site on first use.
    async fn client(&self) -> Result<JiraClient, FetchError> {
        match &self.inner.upstream {
            Upstream::None => Err(Arc::new(NoSite)),
            Upstream::Client(client) => Ok(client.clone()),
            Upstream::Profile { profile, client } => client
                .get_or_try_init(|| self.inner.connect(profile))
                .await
                .cloned()
                .map_err(|e| Arc::new(e) as FetchError),
        }
    }
}

impl Inner {
    fn reader(&self) -> std::sync::MutexGuard<'_, CacheReader> {
        // A reader holds no transaction between calls: it is fine after a panic.
        self.reader.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A read that counts in the hit figures.
    fn read_counted(
        &self,
        category: Category,
        key: &str,
        now: i64,
    ) -> Result<Option<CachedEntry>, ReadError> {
        Ok(self.reader().get(category, key, now)?)
    }

    /// A look that does not count (the read path's own re-reads).
    fn peek(&self, category: Category, key: &str) -> Result<Option<CachedEntry>, ReadError> {
        Ok(self.reader().peek(category, key)?)
    }

    fn refresh_early(&self, entry: &CachedEntry, now: i64) -> bool {
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        self.early
            .is_due(now, entry.expires_at, entry.fetch_ms, &mut *rng)
    }

    /// The leader of a flight: fetch unless someone else did or is doing it.
    /// `seen_at` is the `fetched_at` of the value the caller saw, if any.
    async fn refresh<F, Fut>(
        &self,
        category: Category,
        key: &str,
        seen_at: Option<i64>,
        fetch: F,
    ) -> Result<CachedValue, ReadError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, FetchError>>,
    {
        // A flight that ended since the caller's read may have stored a value.
        let now = now_ms();
        let current = self.peek(category, key)?;
        if let Some(c) = &current
            && now < c.expires_at
            && Some(c.fetched_at) != seen_at
        {
            return Ok(CachedValue::from_entry(c, now, Origin::Cache));
        }
        let current_at = current.as_ref().map(|c| c.fetched_at);
        let lease = match self
            .leases
            .try_acquire(category, key, self.options.lease_ttl)
            .await
        {
            Ok(Some(lease)) => {
                // Another process may have stored and released between the
                // look above and the lease.
                let now = now_ms();
                if let Some(c) = self.peek(category, key)?
                    && now < c.expires_at
                    && Some(c.fetched_at) != current_at
                {
                    lease.release().await;
                    return Ok(CachedValue::from_entry(&c, now, Origin::Cache));
                }
                Some(lease)
            }
            Ok(None) => {
                // Another process is refetching it.
                if let Some(c) = &current
                    && now < c.expires_at
                {
                    return Ok(CachedValue::from_entry(c, now, Origin::Cache));
                }
                match self.wait_for_other(category, key, current_at).await? {
                    Waited::Stored(entry) => {
                        return Ok(CachedValue::from_entry(&entry, now_ms(), Origin::Cache));
                    }
                    Waited::Leased(lease) => Some(lease),
                    Waited::TimedOut => {
                        let now = now_ms();
                        if let Some(c) = &current
                            && self.within_max_stale(c, now)
                        {
                            return Ok(CachedValue::from_entry(
                                c,
                                now,
                                Origin::StaleWhileRefreshing,
                            ));
                        }
                        tracing::debug!(%category, key, "another process's refetch is slow; fetching without the lease");
                        None
                    }
                }
            }
            Err(e) => {
                tracing::warn!(%category, key, error = %e, "could not take the refetch lease; fetching without it");
                None
            }
        };
        let fetched = self.fetch_and_store(category, key, fetch).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        match fetched {
            Ok(value) => Ok(value),
            Err(cause) => self.fallback(category, key, current, cause),
        }
    }

    /// Runs the fetch, timing it, and stores its value through the writer.
    async fn fetch_and_store<F, Fut>(
        &self,
        category: Category,
        key: &str,
        fetch: F,
    ) -> Result<CachedValue, FetchError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, FetchError>>,
    {
        let started = Instant::now();
        let value = fetch().await?;
        // Rounded up: a fetch that took any time at all has δ ≥ 1 ms.
        let fetch_ms =
            i64::try_from(started.elapsed().as_micros().div_ceil(1000)).unwrap_or(i64::MAX);
        let now = now_ms();
        let entry = expiry::new_entry(category, key, value, now, fetch_ms, &self.options.ttl);
        let fetched = CachedValue {
            value: entry.value.clone(),
            freshness: Freshness::Fresh,
            age: Duration::ZERO,
            fetched_at: entry.fetched_at,
            expires_at: entry.expires_at,
            origin: Origin::Fetched,
        };
        if let Err(e) = self.writer.put_page(vec![entry]).await {
            tracing::warn!(%category, key, error = %e, "could not store a fetched value; returning it uncached");
        }
        Ok(fetched)
    }

    /// Polls the cache while another process holds the lease.
    async fn wait_for_other(
        &self,
        category: Category,
        key: &str,
        seen_at: Option<i64>,
    ) -> Result<Waited, ReadError> {
        let deadline = Instant::now() + self.options.lease_wait;
        let changed = |entry: &Option<CachedEntry>| {
            entry
                .as_ref()
                .is_some_and(|e| Some(e.fetched_at) != seen_at)
        };
        while Instant::now() < deadline {
            tokio::time::sleep(self.options.lease_poll).await;
            let entry = self.peek(category, key)?;
            if changed(&entry) {
                return Ok(Waited::Stored(entry.expect("changed implies present")));
            }
            if let Ok(Some(lease)) = self
                .leases
                .try_acquire(category, key, self.options.lease_ttl)
                .await
            {
                // The holder may have stored and released between the two looks.
                let entry = self.peek(category, key)?;
                if changed(&entry) {
                    lease.release().await;
                    return Ok(Waited::Stored(entry.expect("changed implies present")));
                }
                return Ok(Waited::Leased(lease));
            }
        }
        Ok(Waited::TimedOut)
    }

    /// After a failed fetch: the cached value if it is fresh or stale within
    /// `max_stale`, else the error.
    fn fallback(
        &self,
        category: Category,
        key: &str,
        current: Option<CachedEntry>,
        cause: FetchError,
    ) -> Result<CachedValue, ReadError> {
        let now = now_ms();
        // Another process may have stored a newer value meanwhile.
        let best = match self.peek(category, key) {
            Ok(Some(entry)) => Some(entry),
            _ => current,
        };
        let Some(entry) = best else {
            return Err(ReadError::Fetch {
                category,
                key: key.to_string(),
                cause,
            });
        };
        if now < entry.expires_at {
            tracing::debug!(%category, key, error = %cause, "early refresh failed; the cached value is still fresh");
            return Ok(CachedValue::from_entry(&entry, now, Origin::Cache));
        }
        if self.within_max_stale(&entry, now) {
            tracing::info!(%category, key, error = %cause, "refetch failed; serving the stale value");
            return Ok(CachedValue::from_entry(
                &entry,
                now,
                Origin::StaleAfterError(cause),
            ));
        }
        Err(ReadError::TooStale {
            category,
            key: key.to_string(),
            expired_for: expired_for(&entry, now),
            max_stale: self.options.max_stale,
            cause,
        })
    }

    fn within_max_stale(&self, entry: &CachedEntry, now: i64) -> bool {
        expired_for(entry, now) <= self.options.max_stale
    }

    /// Connects to the profile's site, as `cache_warm` does: the profile's
    /// deployment, else the one an earlier probe of the same site stored in
    /// the cache, else a probe (remembered for next time).
    async fn connect(&self, profile: &Profile) -> Result<JiraClient, crate::site::ConnectError> {
        let remembered = profile
            .deployment
            .or_else(|| self.remembered_deployment(profile));
        let connection =
            crate::site::connect(profile, remembered, self.options.retry.clone()).await?;
        if connection.probed.is_some() {
            let stored = async {
                self.writer
                    .set_meta("site_url".into(), profile.url.to_string())
                    .await?;
                self.writer
                    .set_meta("deployment".into(), connection.deployment.as_str().into())
                    .await
            };
            if let Err(e) = stored.await {
                tracing::debug!(error = %e, "could not remember the probed deployment");
            }
        }
        Ok(connection.client)
    }

    fn remembered_deployment(&self, profile: &Profile) -> Option<Deployment> {
        let reader = self.reader();
        let site = reader.meta("site_url").ok().flatten()?;
        if site != profile.url.as_str() {
            return None;
        }
        reader.meta("deployment").ok().flatten()?.parse().ok()
    }
}

/// How long ago `entry` expired (zero if it has not).
fn expired_for(entry: &CachedEntry, now: i64) -> Duration {
    Duration::from_millis(u64::try_from(now.saturating_sub(entry.expires_at)).unwrap_or(0))
}

/// The fetch error of a handle opened without a Jira site.
#[derive(Debug, thiserror::Error)]
#[error(
    "no Jira site to fetch from: the cache was opened without a profile or client (`ReadThrough::without_site`)"
)]
struct NoSite;

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
