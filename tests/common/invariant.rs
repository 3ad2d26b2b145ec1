//! The invariant every fault test checks after a warm (issue 13), in one
//! place so that each test states only its scenario:
//!
//! 1. **Nothing lost.** No entry is removed unless the site no longer has
//!    it: an issue, project or user still on the site, a list or an
//!    assignable list of a project still on the site, and any field entry
//!    are never removed. (A removal of something gone from the site is
//!    allowed, not required: a broken listing proves nothing.)
//! 2. **No watermark passes an unfetched change.** For every project with a
//!    watermark, every cached issue of that project that the site last
//!    changed at or before the watermark is cached at that version.
//! 3. **The exit code and report say what was incomplete.** The exit code
//!    is one the contract documents (never a panic's 101); a run that
//!    exits 0 left the categories the test asks about complete and current
//!    (every item the site holds is cached, every cached issue at the
//!    site's version), and its run record says `ok`; a run that exits
//!    otherwise says why on stderr or in its report, and its run record is
//!    not `ok`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use fake_jira::FakeJira;
use jira_cache::Category;
use jira_cache::cache::Cache;

use super::{Sandbox, text};

const CATEGORIES: [Category; 4] = [
    Category::Project,
    Category::Field,
    Category::User,
    Category::Issue,
];

/// Exit codes `../shared/CONVENTIONS.md` documents for `cache_warm`.
const DOCUMENTED_EXITS: [i32; 9] = [0, 1, 2, 3, 4, 5, 6, 7, 130];

/// What a cache held at one moment: every key of every category (with an
/// issue's cached `updated`), the issue watermarks and the last run.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Category → key → cached `updated` (unix ms; issues only).
    pub entries: BTreeMap<Category, BTreeMap<String, Option<i64>>>,
    /// Project → watermark (unix ms).
    pub watermarks: BTreeMap<String, i64>,
    /// The last run's result (`ok`, `partial`, …), if any run was recorded.
    pub last_run: Option<String>,
    /// When the snapshot was taken (unix ms): taken before a run, a bound
    /// on what the run could know of.
    pub taken_at_ms: i64,
}

impl Snapshot {
    /// The cache of profile `test` in this sandbox; empty when there is no
    /// cache file yet.
    pub fn take(sb: &Sandbox) -> Snapshot {
        let taken_at_ms = chrono::Utc::now().timestamp_millis();
        let path = sb.cache_path("test");
        if !path.exists() {
            return Snapshot {
                taken_at_ms,
                ..Snapshot::default()
            };
        }
        let reader = Cache::open_read_only(&path).expect("the cache opens read-only");
        let mut entries = BTreeMap::new();
        for category in CATEGORIES {
            let keys = reader.keys(category, None).expect("keys");
            let versions = if category == Category::Issue {
                reader
                    .issue_versions(keys.iter().map(String::as_str))
                    .expect("issue versions")
            } else {
                Default::default()
            };
            let map: BTreeMap<String, Option<i64>> = keys
                .into_iter()
                .map(|k| {
                    let v = versions.get(&k).copied().flatten();
                    (k, v)
                })
                .collect();
            entries.insert(category, map);
        }
        let watermarks = reader
            .watermarks()
            .expect("watermarks")
            .into_iter()
            .map(|w| (w.project, w.newest_updated_ms))
            .collect();
        let last_run = reader
            .runs(1)
            .expect("runs")
            .first()
            .map(|r| r.result.as_str().to_string());
        Snapshot {
            entries,
            watermarks,
            last_run,
            taken_at_ms,
        }
    }

    /// The keys of one category.
    pub fn keys(&self, category: Category) -> BTreeSet<String> {
        self.entries
            .get(&category)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// What the site holds now, as cache keys: the yardstick for "removed
/// without proof" and "complete".
#[derive(Debug, Clone, Default)]
pub struct Truth {
    /// Category → the keys of the items the site holds (projects by key,
    /// users by account id or key, issues by key). `None`: the site's
    /// items of that category are not known to the test.
    items: BTreeMap<Category, BTreeSet<String>>,
    /// Issue key → (project key, `updated` in unix ms).
    issues: BTreeMap<String, (String, Option<i64>)>,
    /// The categories a run that exits 0 must leave complete and current.
    complete: BTreeSet<Category>,
}

impl Truth {
    /// What this fake site holds now.
    pub fn of(fake: &FakeJira) -> Truth {
        fake.site().with(|s| {
            let mut items = BTreeMap::new();
            let str_of = |v: &serde_json::Value, k: &str| v[k].as_str().map(str::to_string);
            items.insert(
                Category::Project,
                s.projects.iter().filter_map(|p| str_of(p, "key")).collect(),
            );
            items.insert(
                Category::User,
                s.users
                    .iter()
                    .filter_map(|u| {
                        str_of(u, "accountId")
                            .or_else(|| str_of(u, "key"))
                            .or_else(|| str_of(u, "name"))
                    })
                    .collect(),
            );
            let mut issues = BTreeMap::new();
            for i in &s.issues {
                let Some(key) = str_of(i, "key") else {
                    continue;
                };
                let project = str_of(&i["fields"]["project"], "key").unwrap_or_default();
                let updated = i["fields"]["updated"]
                    .as_str()
                    .and_then(fake_jira::parse_jira_time)
                    .map(|t| t.timestamp_millis());
                issues.insert(key, (project, updated));
            }
            items.insert(Category::Issue, issues.keys().cloned().collect());
            Truth {
                items,
                issues,
                complete: BTreeSet::new(),
            }
        })
    }

    /// A site the test describes itself (a scripted server): these are the
    /// keys it holds in `category`.
    pub fn with_items(
        mut self,
        category: Category,
        keys: impl IntoIterator<Item = impl Into<String>>,
    ) -> Truth {
        self.items
            .insert(category, keys.into_iter().map(Into::into).collect());
        self
    }

    /// A run that exits 0 must leave these categories complete (every item
    /// the site holds cached) and, for issues, current.
    pub fn complete_on_success(mut self, categories: &[Category]) -> Truth {
        self.complete.extend(categories.iter().copied());
        self
    }

    /// May `key` of `category` leave the cache? Only when the site no
    /// longer has what it stands for.
    fn may_remove(&self, category: Category, key: &str) -> bool {
        let gone = |c: Category, k: &str| {
            self.items
                .get(&c)
                .is_some_and(|on_site| !on_site.contains(k))
        };
        if key.starts_with("list:") {
            // A listing's own entry stays while anything is cached.
            return false;
        }
        match category {
            Category::Field => false,
            Category::User => match key.strip_prefix("assignable:") {
                Some(project) => gone(Category::Project, project),
                None => gone(Category::User, key),
            },
            Category::Issue | Category::Project => gone(category, key),
        }
    }
}

/// Checks the invariant of a warm that ran between `before` and `after`
/// and ended with `out`; panics with everything needed to see why.
pub fn check(before: &Snapshot, after: &Snapshot, truth: &Truth, out: &Output) {
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {}", text(out)));
    let mut broken = Vec::new();

    // 1. Nothing lost.
    for category in CATEGORIES {
        let was = before.keys(category);
        let now = after.keys(category);
        for key in was.difference(&now) {
            if !truth.may_remove(category, key) {
                broken.push(format!(
                    "{category:?} {key:?} was removed, but the site still has it"
                ));
            }
        }
    }

    // 2. No watermark passes an unfetched change.
    let cached_issues = after.entries.get(&Category::Issue);
    for (project, mark) in &after.watermarks {
        for (key, (p, site_updated)) in &truth.issues {
            let (true, Some(site_updated)) = (p == project, site_updated) else {
                continue;
            };
            if site_updated > mark {
                continue;
            }
            if let Some(cached) = cached_issues.and_then(|m| m.get(key))
                && *cached != Some(*site_updated)
            {
                broken.push(format!(
                    "{project}'s watermark {mark} passes {key}'s change at {site_updated}, \
                     cached at {cached:?}"
                ));
            }
        }
    }

    // 3. The exit code and the report say what was incomplete.
    if !DOCUMENTED_EXITS.contains(&code) {
        broken.push(format!("exit {code} is not a documented exit code"));
    }
    if code == 0 {
        if after.last_run.as_deref().is_some_and(|r| r != "ok") {
            broken.push(format!(
                "exit 0, but the run record says {:?}",
                after.last_run
            ));
        }
        for category in &truth.complete {
            // Issues: by their window, below.
            let Some(on_site) = truth
                .items
                .get(category)
                .filter(|_| *category != Category::Issue)
            else {
                continue;
            };
            let cached = after.keys(*category);
            let missing: Vec<&String> = on_site.difference(&cached).collect();
            if !missing.is_empty() {
                broken.push(format!(
                    "exit 0, but {} {category:?} entries the site holds are not cached: {:?}",
                    missing.len(),
                    missing.iter().take(5).collect::<Vec<_>>()
                ));
            }
        }
        if truth.complete.contains(&Category::Issue) {
            // What the run could know of: changed before it started, and
            // well inside the issue window (30 days by default).
            let window_start = before.taken_at_ms - 29 * 86_400_000;
            for (key, (_, site_updated)) in &truth.issues {
                let Some(updated) = *site_updated else {
                    continue;
                };
                if updated > before.taken_at_ms || updated < window_start {
                    continue;
                }
                let cached = cached_issues.and_then(|m| m.get(key));
                if cached.is_none() {
                    broken.push(format!(
                        "exit 0, but {key} (changed at {updated}) is not cached"
                    ));
                } else if let Some(cached) = cached
                    && *cached != Some(updated)
                {
                    broken.push(format!(
                        "exit 0, but {key} is cached at {cached:?}, the site has {site_updated:?}"
                    ));
                }
            }
        }
    } else {
        if after.last_run.as_deref() == Some("ok") {
            broken.push(format!("exit {code}, but the run record says ok"));
        }
        if out
            .stderr
            .iter()
            .chain(&out.stdout)
            .all(u8::is_ascii_whitespace)
        {
            broken.push(format!("exit {code} without a word on why"));
        }
    }

    assert!(
        broken.is_empty(),
        "the invariant does not hold:\n- {}\n{}",
        broken.join("\n- "),
        text(out)
    );
}

/// Runs a warm and checks the invariant around it: the snapshot before, the
/// run, the snapshot after, against `truth` as the site holds it once the
/// run has ended. Returns the run's output.
pub fn warm_checked(sb: &Sandbox, args: &[&str], truth: impl FnOnce() -> Truth) -> Output {
    let before = Snapshot::take(sb);
    let out = sb.warm(args).output().expect("cache_warm runs");
    let after = Snapshot::take(sb);
    check(&before, &after, &truth(), &out);
    out
}
