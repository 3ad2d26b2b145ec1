//! The write operations, as plain functions on the writer thread's
//! connection. Each one is atomic: [`put_page`], [`remove_missing`],
//! [`set_meta`] and [`set_watermark`] run inside a transaction the writer
//! opened (possibly shared with other queued operations, see `writer.rs`);
//! the others open their own.
//!
//! Every operation that adds, resizes or deletes entries keeps
//! `category_totals` and `project_issue_totals` exact itself ([`Totals`]):
//! there are no row triggers (schema 3), because a statement that fires one
//! pays for a statement journal.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::{
    Connection, OptionalExtension, Transaction, TransactionBehavior, params, params_from_iter,
};
use xxhash_rust::xxh3::xxh3_64;

use super::{from_sql_int, size_on_disk, to_sql_int};
use crate::Category;

/// One value to store, as fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The entry's category.
    pub category: Category,
    /// The key within the category (see `CONVENTIONS.md`).
    pub key: String,
    /// The JSON text exactly as Jira sent it; stored byte for byte.
    pub value: String,
    /// When it was fetched, unix ms.
    pub fetched_at: i64,
    /// When it stops being fresh, unix ms.
    pub expires_at: i64,
    /// How long the fetch took, in ms: the δ of early refresh. 0 when the
    /// writer did not time it (e.g. issues fetched by key with `--issue`):
    /// such an entry is not refreshed early, only at its expiry.
    pub fetch_ms: i64,
    /// Issues: the project key.
    pub project: Option<String>,
    /// Issues: Jira's `updated`, unix ms.
    pub updated_at: Option<i64>,
}

/// A listing whose complete run proves all of its entries current at once
/// (every project, every user, each kind of field metadata): its members
/// carry the times of its last complete run instead of their own, so that a
/// run that finds them unchanged writes nothing per entry (schema 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The category of its entries.
    pub category: Category,
    /// Its name within the category, e.g. `users` or `statuses`.
    pub name: String,
    /// When this run started, unix ms: the members' `fetched_at` once it
    /// completes.
    pub fetched_at: i64,
    /// `fetched_at` plus the category's TTL: the members' expiry once it
    /// completes.
    pub expires_at: i64,
}

/// What [`CacheWriter::put_page`](super::CacheWriter::put_page) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PutOutcome {
    /// Entries whose value was new or changed, and was written.
    pub written: u64,
    /// Entries whose value was unchanged: only their times were refreshed.
    pub unchanged: u64,
}

/// Which entries of a category a reconciliation listing covers
/// ([`CacheWriter::remove_missing`](super::CacheWriter::remove_missing)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyScope {
    /// Every entry of the category.
    All,
    /// Keys matching this SQLite GLOB (case-sensitive), e.g. `list:*`.
    Glob(String),
    /// Keys NOT matching this SQLite GLOB, e.g. users but not `assignable:*`.
    NotGlob(String),
    /// Issues of `project` whose `updated` is at or after `updated_since_ms`:
    /// the window of an issue key census. Issues that aged out of the window
    /// are outside the scope and stay until their TTL.
    IssueWindow {
        /// The project key.
        project: String,
        /// Start of the window, unix ms, inclusive.
        updated_since_ms: i64,
    },
}

/// What [`CacheWriter::enforce_max_size`](super::CacheWriter::enforce_max_size) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct EvictionOutcome {
    /// Expired entries removed (oldest expiry first).
    pub removed_expired: u64,
    /// Fresh entries removed, least recently read first.
    pub removed_lru: u64,
    /// Total entry bytes before.
    pub bytes_before: u64,
    /// Total entry bytes after.
    pub bytes_after: u64,
}

/// What [`CacheWriter::prune`](super::CacheWriter::prune) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneOutcome {
    /// Expired entries removed.
    pub removed: u64,
    /// How much smaller the file (with its WAL) got.
    pub bytes_freed_from_file: u64,
}

/// Changes to the kept totals made by one operation, applied once at its end
/// and in its transaction, so `cache_status` reads its figures without a scan.
#[derive(Debug, Default)]
struct Totals {
    /// Entries and bytes added (negative: removed), in [`Category::ALL`] order.
    categories: [(i64, i64); 4],
    /// Issues added (negative: removed), per project. Only issues with a
    /// project count, as `cache_status` shows them per project.
    projects: HashMap<String, i64>,
    /// Listings that lost a member or whose member changed: their page
    /// digests no longer vouch for anything (`listing_pages`).
    listings: HashSet<i64>,
}

impl Totals {
    fn count(&mut self, category: Category, size: i64, project: Option<&str>, sign: i64) {
        let slot = Category::ALL
            .iter()
            .position(|c| *c == category)
            .expect("Category::ALL holds every category");
        self.categories[slot].0 += sign;
        self.categories[slot].1 += sign * size;
        if let (Category::Issue, Some(project)) = (category, project) {
            *self.projects.entry(project.to_string()).or_default() += sign;
        }
    }

    fn added(&mut self, category: Category, size: i64, project: Option<&str>) {
        self.count(category, size, project, 1);
    }

    fn removed(&mut self, category: Category, size: i64, project: Option<&str>) {
        self.count(category, size, project, -1);
    }

    /// Runs `DELETE FROM entries <condition>`, counting every row it
    /// deletes; answers how many.
    fn delete(
        &mut self,
        tx: &Connection,
        condition: &str,
        args: impl rusqlite::Params,
    ) -> rusqlite::Result<u64> {
        let mut delete = tx.prepare_cached(&format!(
            "DELETE FROM entries {condition} RETURNING category, size, project, listing"
        ))?;
        let mut rows = delete.query(args)?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            let category = row_category(row, 0)?;
            let project = row.get_ref(2)?.as_str_or_null()?;
            self.removed(category, row.get(1)?, project);
            if let Some(listing) = row.get::<_, Option<i64>>(3)? {
                self.listings.insert(listing);
            }
            n += 1;
        }
        Ok(n)
    }

    /// Notes that `listing` lost a member or that one of them changed.
    fn disturbed(&mut self, listing: Option<i64>) {
        if let Some(listing) = listing {
            self.listings.insert(listing);
        }
    }

    fn apply(&self, conn: &Connection) -> rusqlite::Result<()> {
        for listing in &self.listings {
            conn.prepare_cached("DELETE FROM listing_pages WHERE listing = ?1")?
                .execute([listing])?;
        }
        for (category, (entries, bytes)) in Category::ALL.iter().zip(self.categories) {
            if entries != 0 || bytes != 0 {
                conn.prepare_cached(
                    "UPDATE category_totals SET entries = entries + ?2, bytes = bytes + ?3
                     WHERE category = ?1",
                )?
                .execute(params![category.as_str(), entries, bytes])?;
            }
        }
        for (project, issues) in &self.projects {
            if *issues != 0 {
                conn.prepare_cached(
                    "INSERT INTO project_issue_totals (project, issues) VALUES (?1, ?2)
                     ON CONFLICT (project) DO UPDATE SET issues = issues + excluded.issues",
                )?
                .execute(params![project, issues])?;
            }
        }
        Ok(())
    }
}

/// Reads a category column (the schema's CHECK allows only the four names).
fn row_category(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Category> {
    row.get_ref(idx)?.as_str()?.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// The hash stored for a value: xxh3_64 of its bytes, as SQLite's `i64`.
pub(crate) fn value_hash(value: &str) -> i64 {
    xxh3_64(value.as_bytes()) as i64
}

/// The size accounted for an entry: its key plus its value, in bytes.
fn entry_size(key: &str, value: &str) -> i64 {
    to_sql_int((key.len() + value.len()) as u64)
}

pub(crate) fn immediate(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Stores a page of entries; call inside a transaction.
///
/// With `listing`, the entries of its category become its members: they
/// take the listing's times, and one that is already a member with an
/// unchanged value is not written at all. A listing seen for the first time
/// (or that has no members left) takes this run's times at once, so its
/// first members are fresh even if the run never completes; an existing
/// listing keeps its times until [`finish_listing`] moves them. Without a
/// listing, each entry gets its own times (and leaves any listing).
pub(crate) fn put_page(
    tx: &Connection,
    entries: &[NewEntry],
    listing: Option<(&Listing, u32)>,
) -> rusqlite::Result<PutOutcome> {
    let mut outcome = PutOutcome::default();
    let mut totals = Totals::default();
    let listing = match listing {
        Some((l, page)) => Some((l.category, open_listing(tx, l)?, page)),
        None => None,
    };
    // Each value's hash and size, computed once.
    let sums: Vec<(i64, i64)> = entries
        .iter()
        .map(|e| (value_hash(&e.value), entry_size(&e.key, &e.value)))
        .collect();
    // The same page as last time, all members unchanged: nothing to write.
    let digest = listing.and_then(|(category, _, _)| page_digest(category, entries, &sums));
    if let (Some((_, id, page)), Some(digest)) = (listing, digest) {
        let stored: Option<i64> = tx
            .prepare_cached("SELECT digest FROM listing_pages WHERE listing = ?1 AND page = ?2")?
            .query_row(params![id, page], |r| r.get(0))
            .optional()?;
        if stored == Some(digest) {
            outcome.unchanged = entries.len() as u64;
            return Ok(outcome);
        }
    }
    let page = listing.map(|(_, _, page)| page);
    let listing = listing.map(|(category, id, _)| (category, id));
    {
        let mut find = tx.prepare_cached(
            "SELECT id, hash, size, project, listing FROM entries WHERE category = ?1 AND key = ?2",
        )?;
        // An unchanged value has an unchanged project and `updated` (both
        // come from it): only the times move, so the project index is left
        // alone. `?5`: the listing (then the times are NULL), or NULL.
        let mut touch = tx.prepare_cached(
            "UPDATE entries SET fetched_at = ?2, expires_at = ?3, fetch_ms = ?4, listing = ?5
             WHERE id = ?1",
        )?;
        // The same for an entry that is in no listing and joins none (an
        // issue, a value fetched alone): `listing` and its index stay as is.
        let mut touch_own = tx.prepare_cached(
            "UPDATE entries SET fetched_at = ?2, expires_at = ?3, fetch_ms = ?4 WHERE id = ?1",
        )?;
        let mut rewrite = tx.prepare_cached(
            "UPDATE entries SET hash = ?2, size = ?3, fetched_at = ?4, expires_at = ?5, fetch_ms = ?6,
                                project = ?7, updated_at = ?8, listing = ?9
             WHERE id = ?1",
        )?;
        let mut insert = tx.prepare_cached(
            "INSERT INTO entries (category, key, hash, size, fetched_at, expires_at, fetch_ms,
                                  project, updated_at, listing)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?;
        let mut set_value = tx.prepare_cached(
            "INSERT INTO entry_values (id, value) VALUES (?1, ?2)
             ON CONFLICT (id) DO UPDATE SET value = excluded.value",
        )?;
        for (e, &(hash, size)) in entries.iter().zip(&sums) {
            // The listing this entry joins, and its own times (NULL in a listing).
            let member = listing.and_then(|(category, id)| (category == e.category).then_some(id));
            let (fetched_at, expires_at) = match member {
                Some(_) => (None, None),
                None => (Some(e.fetched_at), Some(e.expires_at)),
            };
            let existing = find
                .query_map(params![e.category.as_str(), e.key], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, Option<i64>>(4)?,
                    ))
                })?
                .next()
                .transpose()?;
            match existing {
                // Same hash and same length: the value is unchanged, and a
                // member of this same listing needs nothing at all.
                Some((_, old_hash, old_size, _, old_listing))
                    if old_hash == hash
                        && old_size == size
                        && member.is_some()
                        && old_listing == member =>
                {
                    outcome.unchanged += 1;
                }
                Some((id, old_hash, old_size, _, old_listing))
                    if old_hash == hash && old_size == size =>
                {
                    if old_listing.is_none() && member.is_none() {
                        touch_own.execute(params![id, e.fetched_at, e.expires_at, e.fetch_ms])?;
                    } else {
                        // It leaves the listing it was in (if another).
                        totals.disturbed(old_listing);
                        touch.execute(params![id, fetched_at, expires_at, e.fetch_ms, member])?;
                    }
                    outcome.unchanged += 1;
                }
                Some((id, _, old_size, old_project, old_listing)) => {
                    totals.disturbed(old_listing);
                    totals.removed(e.category, old_size, old_project.as_deref());
                    totals.added(e.category, size, e.project.as_deref());
                    rewrite.execute(params![
                        id,
                        hash,
                        size,
                        fetched_at,
                        expires_at,
                        e.fetch_ms,
                        e.project,
                        e.updated_at,
                        member
                    ])?;
                    set_value.execute(params![id, e.value])?;
                    outcome.written += 1;
                }
                None => {
                    totals.added(e.category, size, e.project.as_deref());
                    let id = insert.insert(params![
                        e.category.as_str(),
                        e.key,
                        hash,
                        size,
                        fetched_at,
                        expires_at,
                        e.fetch_ms,
                        e.project,
                        e.updated_at,
                        member
                    ])?;
                    set_value.execute(params![id, e.value])?;
                    outcome.written += 1;
                }
            }
        }
    }
    totals.apply(tx)?;
    // After `apply`: this page's own changes must not drop its new digest.
    if let (Some((_, id)), Some(page), Some(digest)) = (listing, page, digest) {
        tx.prepare_cached(
            "INSERT INTO listing_pages (listing, page, digest) VALUES (?1, ?2, ?3)
             ON CONFLICT (listing, page) DO UPDATE SET digest = excluded.digest",
        )?
        .execute(params![id, page, digest])?;
    }
    Ok(outcome)
}

/// The digest of a listing's page: its keys, value hashes and sizes, in
/// order. `None` if some entry is not of the listing's category (such a
/// page is always looked at entry by entry).
fn page_digest(category: Category, entries: &[NewEntry], sums: &[(i64, i64)]) -> Option<i64> {
    let mut bytes = Vec::with_capacity(entries.len() * 48);
    let mut keys = std::collections::HashSet::with_capacity(entries.len());
    for (e, (hash, size)) in entries.iter().zip(sums) {
        // A page that gives a key twice is counted entry by entry (as on
        // PostgreSQL), which an unchanged digest would skip.
        if e.category != category || !keys.insert(e.key.as_str()) {
            return None;
        }
        // Each key's length first, so that no two pages run together alike.
        bytes.extend_from_slice(&(e.key.len() as u64).to_le_bytes());
        bytes.extend_from_slice(e.key.as_bytes());
        bytes.extend_from_slice(&hash.to_le_bytes());
        bytes.extend_from_slice(&size.to_le_bytes());
    }
    Some(xxh3_64(&bytes) as i64)
}

/// The id of `listing`'s row, creating it with this run's times if it is
/// new, and giving it this run's times if it has no members (a listing
/// whose entries were all removed starts afresh, not with stale times).
fn open_listing(tx: &Connection, listing: &Listing) -> rusqlite::Result<i64> {
    tx.prepare_cached(
        "INSERT INTO listings (category, name, fetched_at, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (category, name) DO UPDATE
         SET fetched_at = excluded.fetched_at, expires_at = excluded.expires_at
         WHERE NOT EXISTS (SELECT 1 FROM entries WHERE listing = listings.id)",
    )?
    .execute(params![
        listing.category.as_str(),
        listing.name,
        listing.fetched_at,
        listing.expires_at
    ])?;
    tx.prepare_cached("SELECT id FROM listings WHERE category = ?1 AND name = ?2")?
        .query_row(params![listing.category.as_str(), listing.name], |r| {
            r.get(0)
        })
}

/// Ends a complete run of `listing`; call once every page of the run is
/// stored, and only for a run that listed everything it covers (one cut
/// short [`leave_listing`]s instead). Answers how many entries it removed.
///
/// - `listed`: the keys the run returned. Every one is a member by now, and
///   gets the run's times.
/// - A member the run did not return (cached by a run over a wider scope,
///   or kept although unlisted) leaves the listing with the times it had.
/// - `removal`: entries of the scope whose key is neither listed nor in the
///   set given are removed, as [`remove_missing`] does.
pub(crate) fn finish_listing(
    tx: &Connection,
    listing: &Listing,
    listed: &HashSet<String>,
    removal: Option<(&KeyScope, &HashSet<String>)>,
) -> rusqlite::Result<u64> {
    let id = open_listing(tx, listing)?;
    let removed = match removal {
        Some((scope, also_keep)) => remove_unless(tx, listing.category, scope, |key| {
            listed.contains(key) || also_keep.contains(key)
        })?,
        None => 0,
    };
    // Members are a superset of `listed`; only if there are more of them
    // is it worth finding which. (Should another process fetch a listed
    // entry alone between its page and this end, that entry is no longer a
    // member, and an unlisted member could then pass uncounted: it would
    // take this run's times. Only times, never a value, can be off so.)
    let members: i64 = tx
        .prepare_cached("SELECT count(*) FROM entries WHERE listing = ?1")?
        .query_row([id], |r| r.get(0))?;
    if from_sql_int(members) > listed.len() as u64 {
        let unlisted: Vec<i64> = {
            let mut stmt = tx.prepare_cached("SELECT id, key FROM entries WHERE listing = ?1")?;
            let mut rows = stmt.query([id])?;
            let mut unlisted = Vec::new();
            while let Some(row) = rows.next()? {
                if !listed.contains(row.get_ref(1)?.as_str()?) {
                    unlisted.push(row.get(0)?);
                }
            }
            unlisted
        };
        let mut leave = tx.prepare_cached(
            "UPDATE entries SET fetched_at = l.fetched_at, expires_at = l.expires_at, listing = NULL
             FROM listings l WHERE l.id = entries.listing AND entries.id = ?1",
        )?;
        for member in &unlisted {
            leave.execute([member])?;
        }
        if !unlisted.is_empty() {
            tx.prepare_cached("DELETE FROM listing_pages WHERE listing = ?1")?
                .execute([id])?;
        }
    }
    tx.prepare_cached("UPDATE listings SET fetched_at = ?2, expires_at = ?3 WHERE id = ?1")?
        .execute(params![id, listing.fetched_at, listing.expires_at])?;
    Ok(removed)
}

/// Ends a run of `listing` that did not list everything it covers (a site
/// that caps its listing, a part that failed): the members it returned
/// (`keys`) leave the listing with the run's times as their own, since only
/// they are proved current, and the others keep the listing's older times.
/// Answers how many left.
pub(crate) fn leave_listing(
    tx: &Connection,
    listing: &Listing,
    keys: &HashSet<String>,
) -> rusqlite::Result<u64> {
    let mut leave = tx.prepare_cached(
        "UPDATE entries SET fetched_at = ?3, expires_at = ?4, listing = NULL
         WHERE category = ?1 AND key = ?2
           AND listing = (SELECT id FROM listings WHERE category = ?1 AND name = ?5)",
    )?;
    let mut n = 0;
    for key in keys {
        n += leave.execute(params![
            listing.category.as_str(),
            key,
            listing.fetched_at,
            listing.expires_at,
            listing.name
        ])? as u64;
    }
    if n > 0 {
        tx.prepare_cached(
            "DELETE FROM listing_pages
             WHERE listing = (SELECT id FROM listings WHERE category = ?1 AND name = ?2)",
        )?
        .execute(params![listing.category.as_str(), listing.name])?;
    }
    Ok(n)
}

/// Deletes the entries of `category` inside `scope` whose key is not in
/// `keep`; call inside a transaction.
pub(crate) fn remove_missing(
    tx: &Connection,
    category: Category,
    scope: &KeyScope,
    keep: &HashSet<String>,
) -> rusqlite::Result<u64> {
    remove_unless(tx, category, scope, |key| keep.contains(key))
}

/// Deletes the entries of `category` inside `scope` for whose key `keep`
/// is false; call inside a transaction.
fn remove_unless(
    tx: &Connection,
    category: Category,
    scope: &KeyScope,
    keep: impl Fn(&str) -> bool,
) -> rusqlite::Result<u64> {
    let mut args = vec![Value::from(category.as_str().to_string())];
    let condition = match scope {
        KeyScope::All => "",
        KeyScope::Glob(pattern) => {
            args.push(Value::from(pattern.clone()));
            "AND key GLOB ?2"
        }
        KeyScope::NotGlob(pattern) => {
            args.push(Value::from(pattern.clone()));
            "AND key NOT GLOB ?2"
        }
        KeyScope::IssueWindow {
            project,
            updated_since_ms,
        } => {
            args.push(Value::from(project.clone()));
            args.push(Value::from(*updated_since_ms));
            "AND project = ?2 AND updated_at >= ?3"
        }
    };
    let gone: Vec<i64> = {
        // Cached: a warm reconciles once per project, and preparing (parsing
        // and planning) this each time was a third of the reconciliation.
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT id, key FROM entries WHERE category = ?1 {condition}"
        ))?;
        let mut rows = stmt.query(params_from_iter(args))?;
        let mut gone = Vec::new();
        while let Some(row) = rows.next()? {
            let key = row.get_ref(1)?.as_str()?;
            if !key.starts_with(super::SERVE_PREFIX) && !keep(key) {
                gone.push(row.get(0)?);
            }
        }
        gone
    };
    let mut totals = Totals::default();
    delete_ids(tx, &gone, &mut totals)?;
    totals.apply(tx)?;
    Ok(gone.len() as u64)
}

/// Deletes (or with `dry_run` only counts) the entries of `category` (all
/// categories if `None`) whose key matches the GLOB `pattern` (all if `None`).
pub(crate) fn remove(
    conn: &mut Connection,
    category: Option<Category>,
    pattern: Option<&str>,
    dry_run: bool,
) -> rusqlite::Result<u64> {
    const WHERE: &str = "WHERE (?1 IS NULL OR category = ?1) AND (?2 IS NULL OR key GLOB ?2)";
    let args = params![category.map(Category::as_str), pattern];
    if dry_run {
        let n: i64 = conn.query_row(
            &format!("SELECT count(*) FROM entries {WHERE}"),
            args,
            |r| r.get(0),
        )?;
        return Ok(from_sql_int(n));
    }
    let tx = immediate(conn)?;
    // A watermark says "every change up to here is cached": once issues it
    // covers are cleared, it would skip them on the next warm. Clearing
    // issues of a project (every issue: every project) clears its watermark.
    if category.is_none_or(|c| c == Category::Issue) {
        tx.execute(
            "DELETE FROM watermarks WHERE ?1 IS NULL OR project IN (
                 SELECT DISTINCT COALESCE(project, substr(key, 1, instr(key, '-') - 1))
                 FROM entries WHERE category = 'issue' AND key GLOB ?1)",
            params![pattern],
        )?;
    }
    let mut totals = Totals::default();
    let n = totals.delete(&tx, WHERE, args)?;
    totals.apply(&tx)?;
    tx.commit()?;
    Ok(n)
}

/// Sets a `meta` value.
pub(crate) fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// Sets a project's issue watermark.
pub(crate) fn set_watermark(
    conn: &Connection,
    project: &str,
    newest_updated_ms: i64,
    warmed_at: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO watermarks (project, newest_updated_ms, warmed_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (project) DO UPDATE
         SET newest_updated_ms = excluded.newest_updated_ms, warmed_at = excluded.warmed_at",
    )?
    .execute(params![project, newest_updated_ms, warmed_at])?;
    Ok(())
}

/// Total bytes of all entries, from the kept totals.
pub(crate) fn total_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT coalesce(sum(bytes), 0) FROM category_totals")?
        .query_row([], |r| r.get(0))?;
    Ok(from_sql_int(n))
}

/// Brings the total entry bytes under `max_bytes`: expired entries go first
/// (oldest expiry first), then the least recently read (never read first,
/// then oldest fetch). One transaction.
pub(crate) fn enforce_max_size(
    conn: &mut Connection,
    max_bytes: u64,
    now_ms: i64,
) -> rusqlite::Result<EvictionOutcome> {
    let tx = immediate(conn)?;
    let bytes_before = total_bytes(&tx)?;
    let mut outcome = EvictionOutcome {
        bytes_before,
        bytes_after: bytes_before,
        ..EvictionOutcome::default()
    };
    if bytes_before <= max_bytes {
        return Ok(outcome);
    }
    let mut excess = to_sql_int(bytes_before - max_bytes);
    // Entries with their own times, and the members of expired listings
    // (which expire together, at their listing's time), merged by expiry.
    // `category IN (…)` lets SQLite use the (category, expires_at) index.
    let expired = victims(
        &tx,
        "SELECT id, size, expires_at AS x FROM entries
         WHERE category IN ('project', 'field', 'user', 'issue') AND expires_at <= ?1
         UNION ALL
         SELECT e.id, e.size, l.expires_at AS x FROM listings l JOIN entries e ON e.listing = l.id
         WHERE l.expires_at <= ?1
         ORDER BY x, id",
        params![now_ms],
        &mut excess,
    )?;
    let mut totals = Totals::default();
    delete_ids(&tx, &expired, &mut totals)?;
    outcome.removed_expired = expired.len() as u64;
    if excess > 0 {
        // NULLs sort first: entries never read go before any that were.
        let lru = victims(
            &tx,
            "SELECT e.id, e.size FROM entries e LEFT JOIN listings l ON l.id = e.listing
             ORDER BY e.last_read_at, coalesce(e.fetched_at, l.fetched_at), e.id",
            [],
            &mut excess,
        )?;
        delete_ids(&tx, &lru, &mut totals)?;
        outcome.removed_lru = lru.len() as u64;
    }
    totals.apply(&tx)?;
    outcome.bytes_after = total_bytes(&tx)?;
    tx.commit()?;
    Ok(outcome)
}

/// The ids of the first rows of `sql` (id, size) until their sizes cover
/// `excess`, which is decreased accordingly.
fn victims(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
    excess: &mut i64,
) -> rusqlite::Result<Vec<i64>> {
    let mut stmt = tx.prepare(sql)?;
    let mut rows = stmt.query(args)?;
    let mut ids = Vec::new();
    while *excess > 0 {
        let Some(row) = rows.next()? else { break };
        ids.push(row.get(0)?);
        *excess -= row.get::<_, i64>(1)?;
    }
    Ok(ids)
}

fn delete_ids(tx: &Connection, ids: &[i64], totals: &mut Totals) -> rusqlite::Result<()> {
    // In rowid order, consecutive deletes touch neighbouring pages.
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    for id in &ids {
        totals.delete(tx, "WHERE id = ?1", [id])?;
    }
    Ok(())
}

/// Copies the whole WAL into the file and truncates it (`TRUNCATE`),
/// trying again for up to [`TRUNCATE_PATIENCE`] while another connection
/// (another process's checkpoint thread: a server beside a warm) holds the
/// checkpoint: SQLite answers that at once with "busy", without waiting.
/// Whether it finished; a reader that outlasts the wait leaves the rest to
/// a later checkpoint.
pub(crate) fn truncate_wal(conn: &Connection) -> rusqlite::Result<bool> {
    let started = std::time::Instant::now();
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        if busy == 0 {
            return Ok(true);
        }
        if started.elapsed() >= TRUNCATE_PATIENCE {
            tracing::debug!("the WAL stays: another connection kept its checkpoint busy");
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// How long [`truncate_wal`] tries.
const TRUNCATE_PATIENCE: std::time::Duration = std::time::Duration::from_millis(500);

/// Deletes the entries that expired at or before `expired_before_ms`, then
/// returns the freed pages to the file system (incremental vacuum, then a
/// truncating checkpoint of the WAL).
pub(crate) fn prune(
    conn: &mut Connection,
    path: &Path,
    expired_before_ms: i64,
) -> Result<PruneOutcome, super::CacheError> {
    use super::error::SqliteResultExt;
    let before = size_on_disk(path)?;
    let removed = {
        let tx = immediate(conn).at(path)?;
        let mut totals = Totals::default();
        let removed = totals
            .delete(
                &tx,
                "WHERE category IN ('project', 'field', 'user', 'issue') AND expires_at <= ?1",
                [expired_before_ms],
            )
            .at(path)?
            + totals
                .delete(
                    &tx,
                    "WHERE listing IN (SELECT id FROM listings WHERE expires_at <= ?1)",
                    [expired_before_ms],
                )
                .at(path)?;
        totals.apply(&tx).at(path)?;
        tx.commit().at(path)?;
        removed
    };
    // `incremental_vacuum` frees one page per step: step it to the end.
    {
        let mut vacuum = conn.prepare("PRAGMA incremental_vacuum").at(path)?;
        let mut rows = vacuum.query([]).at(path)?;
        while rows.next().at(path)?.is_some() {}
    }
    // A reader may keep the checkpoint from finishing; the next one will.
    truncate_wal(conn).at(path)?;
    let after = size_on_disk(path)?;
    Ok(PruneOutcome {
        removed,
        bytes_freed_from_file: before.saturating_sub(after),
    })
}
