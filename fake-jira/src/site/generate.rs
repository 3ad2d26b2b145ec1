//! Made-up site data: the small site tests use, the large deterministic one
//! benchmarks use, and the pieces both share (the usual metadata lists,
//! users, issues). Randomness comes from a fixed-seed SplitMix64, not from a
//! crate whose streams may change between versions, so a size always gives
//! the same data.

use std::collections::BTreeMap;

use chrono::{Duration, FixedOffset, Utc};
use serde_json::{Map, Value, json};

use super::{Site, issue_key, issue_project_key, jira_time_in, str_field, utc};
use crate::flavor::Flavor;

/// How big a [`Site::generated`] site is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteSize {
    /// Number of projects (keys `AAA`, `AAB`, ...; some, like `ADD` and
    /// `ALL`, are JQL reserved words, as on real sites).
    pub projects: usize,
    /// Number of fields, system fields first, then `customfield_10000`, ...
    pub fields: usize,
    /// Number of users, the calling user included; about 1 in 23 inactive.
    pub users: usize,
    /// Issues in each project.
    pub issues_per_project: usize,
    /// Approximate JSON size of each issue, reached by padding its description.
    pub issue_bytes: usize,
    /// Half the issues of each project (the odd-numbered ones) were updated
    /// within this many days; the others earlier, up to a year before that.
    pub recent_days: u32,
}

impl SiteSize {
    /// The benchmark's site: 300 projects, 3,000 fields, 5,000 users and 30
    /// issues of about 3 KB per project.
    pub fn benchmark() -> SiteSize {
        SiteSize {
            projects: 300,
            fields: 3_000,
            users: 5_000,
            issues_per_project: 30,
            issue_bytes: 3_072,
            recent_days: 30,
        }
    }
}

impl Default for SiteSize {
    /// A modest site: 10 projects, 50 fields, 100 users, 10 issues of about
    /// 1 KB per project, half updated in the last 30 days.
    fn default() -> Self {
        SiteSize {
            projects: 10,
            fields: 50,
            users: 100,
            issues_per_project: 10,
            issue_bytes: 1_024,
            recent_days: 30,
        }
    }
}

/// How [`Site::generated_with`] names its users.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UserNames {
    /// `first.last<n>` with made-up words, spread evenly over two-letter
    /// prefixes (the default).
    #[default]
    Words,
    /// Systematic names, as sites that use employee ids have: `prefix`
    /// then the user's number zero-padded to `digits` (`user0001`, ...;
    /// `e000123`, ...). Display names and email addresses are the name
    /// too, so a Data Center client splitting a capped `/user/search` by
    /// prefix must go as deep as the digits, not stop at 3 characters.
    Numbered {
        /// What every name starts with, e.g. `user` or `e`.
        prefix: String,
        /// The width of the zero-padded number.
        digits: usize,
    },
}

/// What a [`Site::generated_with`] site looks like beyond its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// How users are named. Default [`UserNames::Words`].
    pub user_names: UserNames,
    /// How many active users are assignable in each project. Default 25.
    /// Each project's list starts at a different place in the user list, so
    /// on a site with more than 1,000 users some projects have assignable
    /// users past the thousandth (which Cloud's `/user/assignable/search`
    /// never reaches).
    pub assignable_per_project: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            user_names: UserNames::Words,
            assignable_per_project: 25,
        }
    }
}

/// SplitMix64: small, fast, and the same stream forever.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

pub(super) fn empty(flavor: Flavor) -> Site {
    let myself = bot_user(flavor);
    Site {
        flavor,
        version: match flavor {
            Flavor::Cloud => "1001.0.0-SNAPSHOT".into(),
            Flavor::DataCenter => "10.3.12".into(),
        },
        deployment_type: match flavor {
            Flavor::Cloud => "Cloud".into(),
            Flavor::DataCenter => "Server".into(),
        },
        server_title: "Fake Jira".into(),
        users: vec![myself.clone()],
        myself,
        projects: Vec::new(),
        fields: Vec::new(),
        issue_types: Vec::new(),
        priorities: Vec::new(),
        statuses: Vec::new(),
        status_categories: Vec::new(),
        resolutions: Vec::new(),
        assignable: BTreeMap::new(),
        issues: Vec::new(),
        moved: BTreeMap::new(),
    }
}

/// Fills the metadata lists every site has with the flavor's usual ones.
pub(super) fn standard_metadata(site: &mut Site) {
    site.issue_types = issue_types(site.flavor);
    site.priorities = priorities(site.flavor);
    site.statuses = statuses(site.flavor);
    site.status_categories = status_categories();
    site.resolutions = resolutions(site.flavor);
}

pub(super) fn small(flavor: Flavor) -> Site {
    let mut site = empty(flavor);
    standard_metadata(&mut site);
    site.fields = fields(SYSTEM_FIELDS.len());
    site.fields
        .push(custom_field(10010, "Story Points", "number"));
    site.fields.push(custom_field(10020, "Sprint", "array"));
    site.projects = vec![
        project(flavor, 10000, "ALPHA", "Alpha"),
        project(flavor, 10001, "BETA", "Beta"),
        project(flavor, 10002, "FOR", "Forge"),
    ];
    let people = [
        ("alice", "Alice Archer", true),
        ("bob", "Bob Baker", true),
        ("carol", "Carol Cooper", true),
        ("dave", "Dave Dormant", false),
    ];
    for (i, (name, display, active)) in people.iter().enumerate() {
        site.users
            .push(user(flavor, i + 1, name, display, *active, true));
    }
    if flavor == Flavor::Cloud {
        site.users.push(json!({
            "accountId": "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077",
            "accountType": "app",
            "displayName": "Automation for Jira",
            "active": true,
        }));
    }
    let id_of = |i: usize| Site::user_id(&site.users[i]).unwrap_or_default().to_owned();
    site.assignable = BTreeMap::from([
        ("ALPHA".to_owned(), vec![id_of(0), id_of(1), id_of(2)]),
        ("BETA".to_owned(), vec![id_of(1), id_of(4)]),
        ("FOR".to_owned(), vec![id_of(3)]),
    ]);

    // (project, summary, minutes since the last update, assignee)
    const MIN: i64 = 1;
    const HOUR: i64 = 60;
    const DAY: i64 = 24 * HOUR;
    let issues: [(usize, &str, i64, Option<usize>); 12] = [
        (0, "Set up the build", 400 * DAY, Some(1)),
        (0, "Write the README", 90 * DAY, None),
        (0, "Cache project metadata", 45 * DAY, Some(2)),
        (0, "Retry on 429", 5 * DAY, Some(1)),
        (0, "Honour Retry-After dates", 2 * HOUR, Some(0)),
        (1, "Old design notes", 200 * DAY, None),
        (1, "Just past thirty days", 31 * DAY, Some(3)),
        (1, "Paging guard", 2 * DAY, Some(1)),
        (1, "Fresh bug", 10 * MIN, None),
        (2, "Quote reserved words", 60 * DAY, Some(2)),
        (2, "Forge a release", DAY, Some(1)),
        (2, "Check the key FOR", 3 * DAY, None),
    ];
    let offset = FixedOffset::east_opt(3600).unwrap_or_else(utc);
    let now = Utc::now();
    let mut numbers = [0u64; 3];
    for (i, (p, summary, age, assignee)) in issues.iter().enumerate() {
        numbers[*p] += 1;
        let updated = now - Duration::minutes(*age);
        let created = updated - Duration::days(10 + i as i64);
        let status = &site.statuses[if *age > 30 * DAY { 2 } else { i % 2 }];
        let resolution = (*age > 30 * DAY).then(|| &site.resolutions[0]);
        let project = &site.projects[*p];
        let issue = build_issue(
            flavor,
            IssueSpec {
                id: 10000 + i as u64,
                key: format!(
                    "{}-{}",
                    str_field(project, "key").unwrap_or("X"),
                    numbers[*p]
                ),
                project,
                summary: (*summary).to_owned(),
                description: format!("{summary}: details."),
                status: Some(status),
                priority: site.priorities.get(i % site.priorities.len()),
                issue_type: site.issue_types.get(i % 3),
                resolution,
                assignee: assignee.map(|a| &site.users[a]),
                reporter: Some(&site.users[0]),
                created: jira_time_in(created, offset),
                updated: jira_time_in(updated, offset),
                labels: if i % 3 == 0 { vec!["backend"] } else { vec![] },
                story_points: Some((i % 5 + 1) as f64),
            },
        );
        site.issues.push(issue);
    }
    site
}

pub(super) fn generated(flavor: Flavor, size: SiteSize, options: &GenerateOptions) -> Site {
    let mut rng = Rng::new(0x6a69_7261_2d63_6163);
    let mut site = empty(flavor);
    standard_metadata(&mut site);
    site.fields = fields(size.fields);
    if size.users == 0 {
        site.users.clear();
    }
    for i in 1..size.users {
        site.users.push(match &options.user_names {
            UserNames::Words => generated_user(flavor, i, &mut rng),
            UserNames::Numbered { prefix, digits } => {
                let name = format!("{prefix}{i:0digits$}", digits = *digits);
                user(flavor, i, &name, &name, !i.is_multiple_of(23), true)
            }
        });
    }
    let active: Vec<String> = site
        .users
        .iter()
        .filter(|u| u.get("active") == Some(&Value::Bool(true)))
        .filter_map(|u| Site::user_id(u).map(str::to_owned))
        .collect();
    let user_positions: BTreeMap<String, usize> = site
        .users
        .iter()
        .enumerate()
        .filter_map(|(i, u)| Site::user_id(u).map(|id| (id.to_owned(), i)))
        .collect();
    for p in 0..size.projects {
        let key = project_key(p);
        let name = format!(
            "{} {}",
            word(&mut rng),
            rng.pick(TEAMS).copied().unwrap_or("Team")
        );
        site.projects
            .push(project(flavor, 10000 + p as u64, &key, &name));
        let take = active.len().min(options.assignable_per_project);
        let start = if active.is_empty() {
            0
        } else {
            (p * 7919) % active.len()
        };
        let ids = (0..take)
            .map(|k| active[(start + k) % active.len()].clone())
            .collect();
        site.assignable.insert(key, ids);
    }

    let now = Utc::now();
    let offset = utc();
    let minutes_recent = u64::from(size.recent_days) * 24 * 60;
    let mut pad_len = None;
    let mut pool = String::new();
    let mut issues = Vec::with_capacity(size.projects * size.issues_per_project);
    for (p, project) in site.projects.iter().enumerate() {
        let key = str_field(project, "key").unwrap_or("X");
        let assignable = site.assignable.get(key).map(Vec::as_slice).unwrap_or(&[]);
        for j in 0..size.issues_per_project {
            let number = j + 1;
            let age = if number % 2 == 1 && minutes_recent > 0 {
                rng.below(minutes_recent)
            } else {
                minutes_recent + 1 + rng.below(365 * 24 * 60)
            };
            let updated = now - Duration::minutes(age as i64);
            let created = updated - Duration::minutes(rng.below(200 * 24 * 60) as i64);
            let status = rng.pick(&site.statuses);
            let done = status
                .and_then(|s| s.pointer("/statusCategory/key"))
                .and_then(Value::as_str)
                == Some("done");
            let assignee = if rng.below(5) == 0 {
                None
            } else {
                rng.pick(assignable)
                    .and_then(|id| user_positions.get(id))
                    .map(|&i| &site.users[i])
            };
            let mut spec = IssueSpec {
                id: 10000 + (p * size.issues_per_project + j) as u64,
                key: format!("{key}-{number}"),
                project,
                summary: sentence(&mut rng),
                description: sentence(&mut rng),
                status,
                priority: rng.pick(&site.priorities),
                issue_type: rng.pick(&site.issue_types[..site.issue_types.len().min(4)]),
                resolution: if done {
                    rng.pick(&site.resolutions)
                } else {
                    None
                },
                assignee,
                reporter: rng.pick(&site.users),
                created: jira_time_in(created, offset),
                updated: jira_time_in(updated, offset),
                labels: LABELS
                    .iter()
                    .copied()
                    .filter(|_| rng.below(4) == 0)
                    .collect(),
                story_points: (rng.below(3) > 0).then(|| (rng.below(13) + 1) as f64),
            };
            // The padding is sized once, on the first issue: the others
            // differ from it by a few dozen bytes at most.
            let pad = *pad_len.get_or_insert_with(|| {
                let bare = build_issue(flavor, spec.clone()).to_string().len();
                let pad = size.issue_bytes.saturating_sub(bare);
                pool = lorem(&mut rng, pad + 256);
                pad
            });
            if pad > 0 {
                let start = rng.below(256) as usize;
                spec.description.push(' ');
                spec.description.push_str(&pool[start..start + pad]);
            }
            issues.push(build_issue(flavor, spec));
        }
    }
    site.issues = issues;
    site
}

pub(super) fn add_issue(site: &mut Site, project_key: &str, summary: &str) -> Option<String> {
    let project = site.project(project_key)?.clone();
    let key = str_field(&project, "key")?.to_owned();
    let number = site
        .issues
        .iter()
        .filter(|i| issue_project_key(i).is_some_and(|p| p.eq_ignore_ascii_case(&key)))
        .filter_map(|i| issue_key(i)?.rsplit_once('-')?.1.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
        + 1;
    let id = site
        .issues
        .iter()
        .filter_map(|i| str_field(i, "id")?.parse::<u64>().ok())
        .max()
        .unwrap_or(9_999)
        + 1;
    let now = jira_time_in(Utc::now(), utc());
    let issue_key = format!("{key}-{number}");
    let issue = build_issue(
        site.flavor,
        IssueSpec {
            id,
            key: issue_key.clone(),
            project: &project,
            summary: summary.to_owned(),
            description: String::new(),
            status: site.statuses.first(),
            priority: site.priorities.get(site.priorities.len() / 2),
            issue_type: site.issue_types.first(),
            resolution: None,
            assignee: None,
            reporter: Some(&site.myself),
            created: now.clone(),
            updated: now,
            labels: Vec::new(),
            story_points: None,
        },
    );
    site.issues.push(issue);
    Some(issue_key)
}

/// What an issue is made of, before it becomes JSON.
#[derive(Clone)]
pub(super) struct IssueSpec<'a> {
    pub(super) id: u64,
    pub(super) key: String,
    pub(super) project: &'a Value,
    pub(super) summary: String,
    /// Plain text: an ADF document on Cloud, a string on Data Center;
    /// empty means no description.
    pub(super) description: String,
    pub(super) status: Option<&'a Value>,
    pub(super) priority: Option<&'a Value>,
    pub(super) issue_type: Option<&'a Value>,
    pub(super) resolution: Option<&'a Value>,
    pub(super) assignee: Option<&'a Value>,
    pub(super) reporter: Option<&'a Value>,
    pub(super) created: String,
    pub(super) updated: String,
    pub(super) labels: Vec<&'static str>,
    pub(super) story_points: Option<f64>,
}

pub(super) fn build_issue(flavor: Flavor, spec: IssueSpec<'_>) -> Value {
    let description = if spec.description.is_empty() {
        Value::Null
    } else {
        match flavor {
            Flavor::Cloud => json!({
                "type": "doc",
                "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": spec.description}]}],
            }),
            Flavor::DataCenter => Value::String(spec.description),
        }
    };
    let or_null = |v: Option<&Value>| v.cloned().unwrap_or(Value::Null);
    let mut fields = Map::new();
    fields.insert("summary".into(), spec.summary.into());
    fields.insert("description".into(), description);
    fields.insert("issuetype".into(), or_null(spec.issue_type));
    fields.insert("project".into(), project_ref(spec.project));
    fields.insert("status".into(), or_null(spec.status));
    fields.insert("priority".into(), or_null(spec.priority));
    fields.insert("resolution".into(), or_null(spec.resolution));
    fields.insert(
        "assignee".into(),
        spec.assignee.map(user_ref).unwrap_or(Value::Null),
    );
    fields.insert(
        "reporter".into(),
        spec.reporter.map(user_ref).unwrap_or(Value::Null),
    );
    fields.insert("created".into(), spec.created.into());
    fields.insert("updated".into(), spec.updated.into());
    fields.insert("labels".into(), json!(spec.labels));
    fields.insert("components".into(), json!([]));
    fields.insert("fixVersions".into(), json!([]));
    fields.insert("customfield_10010".into(), json!(spec.story_points));
    json!({
        "id": spec.id.to_string(),
        "key": spec.key,
        "fields": fields,
    })
}

/// The members of a user that issues embed.
fn user_ref(user: &Value) -> Value {
    pick(
        user,
        &[
            "accountId",
            "accountType",
            "key",
            "name",
            "emailAddress",
            "displayName",
            "active",
            "timeZone",
        ],
    )
}

/// The members of a project that issues embed.
fn project_ref(project: &Value) -> Value {
    pick(
        project,
        &["self", "id", "key", "name", "projectTypeKey", "simplified"],
    )
}

fn pick(v: &Value, names: &[&str]) -> Value {
    let mut out = Map::new();
    for name in names {
        if let Some(x) = v.get(*name) {
            out.insert((*name).to_owned(), x.clone());
        }
    }
    Value::Object(out)
}

fn project(flavor: Flavor, id: u64, key: &str, name: &str) -> Value {
    let mut p = json!({
        "id": id.to_string(),
        "key": key,
        "name": name,
        "projectTypeKey": "software",
    });
    if flavor == Flavor::Cloud {
        p["simplified"] = json!(false);
        p["style"] = json!("classic");
        p["isPrivate"] = json!(false);
    }
    p
}

/// `AAA`, `AAB`, ..., `ZZZ`, then `AAAA`, ...
pub(super) fn project_key(mut i: usize) -> String {
    let mut len = 3;
    let mut span = 26usize.pow(3);
    while i >= span {
        i -= span;
        len += 1;
        span = span.saturating_mul(26);
    }
    let mut key = vec![b'A'; len];
    for slot in key.iter_mut().rev() {
        *slot = b'A' + (i % 26) as u8;
        i /= 26;
    }
    String::from_utf8(key).unwrap_or_default()
}

fn bot_user(flavor: Flavor) -> Value {
    match flavor {
        Flavor::Cloud => json!({
            "accountId": "5b10ac8d82e05b22cc7d4ef5",
            "accountType": "atlassian",
            "emailAddress": "bot@example.com",
            "displayName": "Cache Bot",
            "active": true,
            "timeZone": "UTC",
            "locale": "en_US",
        }),
        Flavor::DataCenter => json!({
            "key": "JIRAUSER10000",
            "name": "cache-bot",
            "emailAddress": "bot@example.com",
            "displayName": "Cache Bot",
            "active": true,
            "timeZone": "UTC",
            "locale": "en_US",
        }),
    }
}

/// A user of number `n` (≥ 1): Cloud `accountId`s are 24 hex digits, Data
/// Center keys `JIRAUSER<10100 + n>`.
fn user(flavor: Flavor, n: usize, name: &str, display: &str, active: bool, email: bool) -> Value {
    let mut u = match flavor {
        Flavor::Cloud => json!({
            "accountId": format!("5d{:06x}{:016x}", n, mix(n as u64)),
            "accountType": "atlassian",
        }),
        Flavor::DataCenter => json!({
            "key": format!("JIRAUSER{}", 10_100 + n),
            "name": name,
        }),
    };
    if email {
        u["emailAddress"] = json!(format!("{name}@example.com"));
    }
    u["displayName"] = json!(display);
    u["active"] = json!(active);
    u["timeZone"] = json!("UTC");
    u
}

/// Users whose names spread evenly over two-letter prefixes, so that a Data
/// Center client splitting a capped `/user/search` by prefix finishes. On
/// Cloud some hide their email (privacy settings) and a few are apps.
fn generated_user(flavor: Flavor, n: usize, rng: &mut Rng) -> Value {
    let first = word(rng);
    let last = word(rng);
    let name = format!("{}.{}{n}", first.to_lowercase(), last.to_lowercase());
    let display = format!("{first} {last}");
    let active = !n.is_multiple_of(23);
    if flavor == Flavor::Cloud && n.is_multiple_of(97) {
        let mut app = user(flavor, n, &name, &format!("{first} app"), active, false);
        app["accountType"] = json!("app");
        return app;
    }
    let email = flavor == Flavor::DataCenter || !n.is_multiple_of(5);
    user(flavor, n, &name, &display, active, email)
}

fn mix(x: u64) -> u64 {
    Rng::new(x).next()
}

/// A pronounceable capitalized word of 2 or 3 syllables.
fn word(rng: &mut Rng) -> String {
    const CONSONANTS: &[u8] = b"bcdfghjklmnprstvz";
    const VOWELS: &[u8] = b"aeiou";
    let syllables = 2 + rng.below(2);
    let mut w = String::new();
    for i in 0..syllables {
        let c = CONSONANTS[rng.below(CONSONANTS.len() as u64) as usize] as char;
        let v = VOWELS[rng.below(VOWELS.len() as u64) as usize] as char;
        w.push(if i == 0 { c.to_ascii_uppercase() } else { c });
        w.push(v);
    }
    w
}

const WORDS: &[&str] = &[
    "cache", "project", "field", "user", "issue", "sync", "page", "token", "limit", "retry",
    "status", "report", "warm", "build", "release", "deploy", "query", "index", "error", "login",
];
const TEAMS: &[&str] = &[
    "Platform", "Web", "Mobile", "Ops", "Data", "Billing", "Search", "Infra",
];
const LABELS: &[&str] = &["backend", "frontend", "customer", "tech-debt"];

fn sentence(rng: &mut Rng) -> String {
    let n = 3 + rng.below(5);
    let mut s = String::new();
    for i in 0..n {
        let w = rng.pick(WORDS).copied().unwrap_or("word");
        if i == 0 {
            let mut chars = w.chars();
            if let Some(c) = chars.next() {
                s.push(c.to_ascii_uppercase());
                s.push_str(chars.as_str());
            }
        } else {
            s.push(' ');
            s.push_str(w);
        }
    }
    s
}

/// At least `len` bytes of ASCII filler text.
fn lorem(rng: &mut Rng, len: usize) -> String {
    #[rustfmt::skip]
    const LOREM: &[&str] = &[
        "lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed",
        "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna",
        "aliqua.",
    ];
    let mut s = String::with_capacity(len + 16);
    while s.len() < len {
        s.push_str(rng.pick(LOREM).copied().unwrap_or("lorem"));
        s.push(' ');
    }
    s
}

/// A system field: (id, name, schema type, items, orderable, navigable, searchable).
type SystemField = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    bool,
    bool,
    bool,
);

const SYSTEM_FIELDS: &[SystemField] = &[
    ("summary", "Summary", "string", None, true, true, true),
    (
        "description",
        "Description",
        "string",
        None,
        true,
        true,
        true,
    ),
    (
        "issuetype",
        "Issue Type",
        "issuetype",
        None,
        true,
        true,
        true,
    ),
    ("project", "Project", "project", None, false, true, true),
    ("status", "Status", "status", None, false, true, true),
    ("priority", "Priority", "priority", None, true, true, true),
    (
        "resolution",
        "Resolution",
        "resolution",
        None,
        true,
        true,
        true,
    ),
    ("assignee", "Assignee", "user", None, true, true, true),
    ("reporter", "Reporter", "user", None, true, true, true),
    ("created", "Created", "datetime", None, false, true, true),
    ("updated", "Updated", "datetime", None, false, true, true),
    (
        "labels",
        "Labels",
        "array",
        Some("string"),
        true,
        true,
        true,
    ),
    (
        "components",
        "Component/s",
        "array",
        Some("component"),
        true,
        true,
        true,
    ),
    (
        "fixVersions",
        "Fix Version/s",
        "array",
        Some("version"),
        true,
        true,
        true,
    ),
    (
        "resolutiondate",
        "Resolved",
        "datetime",
        None,
        false,
        true,
        true,
    ),
    ("duedate", "Due date", "date", None, true, true, true),
    ("parent", "Parent", "issuelink", None, true, true, true),
    (
        "issuelinks",
        "Linked Issues",
        "array",
        Some("issuelinks"),
        true,
        true,
        true,
    ),
    (
        "comment",
        "Comment",
        "comments-page",
        None,
        true,
        false,
        true,
    ),
    (
        "attachment",
        "Attachment",
        "array",
        Some("attachment"),
        true,
        false,
        true,
    ),
    (
        "worklog",
        "Log Work",
        "array",
        Some("worklog"),
        true,
        false,
        true,
    ),
    (
        "timespent",
        "Time Spent",
        "number",
        None,
        false,
        true,
        false,
    ),
    ("watches", "Watchers", "watches", None, false, true, false),
    ("votes", "Votes", "votes", None, false, true, false),
];

/// `n` fields: the system ones first, then custom fields.
pub(super) fn fields(n: usize) -> Vec<Value> {
    let mut out: Vec<Value> = SYSTEM_FIELDS
        .iter()
        .take(n)
        .map(|&(id, name, ty, items, orderable, navigable, searchable)| {
            let mut schema = json!({"type": ty, "system": id});
            if let Some(items) = items {
                schema["items"] = json!(items);
            }
            json!({
                "id": id,
                "key": id,
                "name": name,
                "custom": false,
                "orderable": orderable,
                "navigable": navigable,
                "searchable": searchable,
                "clauseNames": [id],
                "schema": schema,
            })
        })
        .collect();
    let kinds = ["string", "number", "option", "user", "datetime"];
    for i in 0..n.saturating_sub(out.len()) {
        let name = format!("Custom field {}", i + 1);
        out.push(custom_field(
            10_000 + i as u64,
            &name,
            kinds[i % kinds.len()],
        ));
    }
    out
}

fn custom_field(id: u64, name: &str, ty: &str) -> Value {
    let custom = match ty {
        "number" => "com.atlassian.jira.plugin.system.customfieldtypes:float",
        "option" => "com.atlassian.jira.plugin.system.customfieldtypes:select",
        "user" => "com.atlassian.jira.plugin.system.customfieldtypes:userpicker",
        "datetime" => "com.atlassian.jira.plugin.system.customfieldtypes:datetime",
        "array" => "com.pyxis.greenhopper.jira:gh-sprint",
        _ => "com.atlassian.jira.plugin.system.customfieldtypes:textfield",
    };
    json!({
        "id": format!("customfield_{id}"),
        "key": format!("customfield_{id}"),
        "name": name,
        "untranslatedName": name,
        "custom": true,
        "orderable": true,
        "navigable": true,
        "searchable": true,
        "clauseNames": [format!("cf[{id}]"), name],
        "schema": {"type": ty, "custom": custom, "customId": id},
    })
}

fn issue_types(flavor: Flavor) -> Vec<Value> {
    let base = match flavor {
        Flavor::Cloud => 10_000,
        Flavor::DataCenter => 1,
    };
    [
        ("Task", false, 0, "A small, distinct piece of work."),
        ("Bug", false, 0, "A problem or error."),
        ("Story", false, 0, "A user story."),
        (
            "Epic",
            false,
            1,
            "A big user story that needs to be broken down.",
        ),
        ("Sub-task", true, -1, "A small piece of a larger task."),
    ]
    .iter()
    .enumerate()
    .map(|(i, (name, subtask, level, description))| {
        let mut t = json!({
            "id": (base + i).to_string(),
            "name": name,
            "description": description,
            "subtask": subtask,
        });
        if flavor == Flavor::Cloud {
            t["hierarchyLevel"] = json!(level);
        }
        t
    })
    .collect()
}

fn priorities(flavor: Flavor) -> Vec<Value> {
    let names: &[(&str, &str)] = match flavor {
        Flavor::Cloud => &[
            ("Highest", "#d04437"),
            ("High", "#f15c75"),
            ("Medium", "#f79232"),
            ("Low", "#707070"),
            ("Lowest", "#999999"),
        ],
        Flavor::DataCenter => &[
            ("Blocker", "#cc0000"),
            ("Critical", "#ff0000"),
            ("Major", "#009900"),
            ("Minor", "#006600"),
            ("Trivial", "#003300"),
        ],
    };
    names
        .iter()
        .enumerate()
        .map(|(i, (name, colour))| {
            let mut p = json!({"id": (i + 1).to_string(), "name": name, "statusColor": colour});
            if flavor == Flavor::Cloud {
                p["isDefault"] = json!(*name == "Medium");
            }
            p
        })
        .collect()
}

fn status_categories() -> Vec<Value> {
    vec![
        json!({"id": 1, "key": "undefined", "colorName": "medium-gray", "name": "No Category"}),
        json!({"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"}),
        json!({"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"}),
        json!({"id": 3, "key": "done", "colorName": "green", "name": "Done"}),
    ]
}

fn statuses(flavor: Flavor) -> Vec<Value> {
    let category = |id: usize| status_categories().into_iter().find(|c| c["id"] == id);
    let list: &[(&str, &str, usize)] = match flavor {
        Flavor::Cloud => &[
            ("10000", "To Do", 2),
            ("3", "In Progress", 4),
            ("10001", "Done", 3),
        ],
        Flavor::DataCenter => &[
            ("1", "Open", 2),
            ("3", "In Progress", 4),
            ("5", "Resolved", 3),
            ("6", "Closed", 3),
            ("4", "Reopened", 2),
        ],
    };
    list.iter()
        .map(|(id, name, cat)| {
            json!({"id": id, "name": name, "description": "", "statusCategory": category(*cat)})
        })
        .collect()
}

fn resolutions(flavor: Flavor) -> Vec<Value> {
    let list: &[(&str, &str)] = match flavor {
        Flavor::Cloud => &[
            ("10000", "Done"),
            ("10001", "Won't Do"),
            ("10002", "Duplicate"),
            ("10003", "Cannot Reproduce"),
        ],
        Flavor::DataCenter => &[
            ("1", "Fixed"),
            ("2", "Won't Fix"),
            ("3", "Duplicate"),
            ("4", "Incomplete"),
            ("5", "Cannot Reproduce"),
        ],
    };
    list.iter()
        .enumerate()
        .map(|(i, (id, name))| {
            let mut r = json!({"id": id, "name": name, "description": format!("{name}.")});
            if flavor == Flavor::Cloud {
                r["default"] = json!(i == 0);
            }
            r
        })
        .collect()
}

/// `count` generated users (numbers `first..first + count`), for fixture
/// sets that have none.
pub(super) fn users(flavor: Flavor, first: usize, count: usize) -> Vec<Value> {
    let mut rng = Rng::new(0x7573_6572 ^ first as u64);
    (first..first + count)
        .map(|n| generated_user(flavor, n, &mut rng))
        .collect()
}

/// Generated issues for fixture projects that come without any: `per_project`
/// issues each, alternately recent and more than 30 days old.
pub(super) fn issues_for(site: &Site, per_project: usize) -> Vec<Value> {
    let mut rng = Rng::new(0x6973_7375);
    let now = Utc::now();
    let mut out = Vec::with_capacity(site.projects.len() * per_project);
    for project in &site.projects {
        let Some(key) = str_field(project, "key") else {
            continue;
        };
        for number in 1..=per_project {
            let days = if number % 2 == 1 {
                rng.below(20)
            } else {
                31 + rng.below(300)
            } as i64;
            let updated = now - Duration::days(days) - Duration::minutes(rng.below(1440) as i64);
            let spec = IssueSpec {
                id: 10_000 + out.len() as u64,
                key: format!("{key}-{number}"),
                project,
                summary: sentence(&mut rng),
                description: sentence(&mut rng),
                status: rng.pick(&site.statuses),
                priority: rng.pick(&site.priorities),
                issue_type: rng.pick(&site.issue_types),
                resolution: None,
                assignee: rng.pick(&site.users),
                reporter: Some(&site.myself),
                created: jira_time_in(updated - Duration::days(30), utc()),
                updated: jira_time_in(updated, utc()),
                labels: Vec::new(),
                story_points: None,
            };
            out.push(build_issue(site.flavor, spec));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_jira_time;

    #[test]
    fn project_keys_count_up_in_letters() {
        assert_eq!(project_key(0), "AAA");
        assert_eq!(project_key(1), "AAB");
        assert_eq!(project_key(26), "ABA");
        assert_eq!(project_key(17_575), "ZZZ");
        assert_eq!(project_key(17_576), "AAAA");
    }

    #[test]
    fn the_same_size_gives_the_same_site() {
        let size = SiteSize {
            projects: 4,
            fields: 30,
            users: 40,
            issues_per_project: 3,
            issue_bytes: 800,
            recent_days: 30,
        };
        let strip = |mut s: Site| {
            for i in &mut s.issues {
                i["fields"]["created"] = Value::Null;
                i["fields"]["updated"] = Value::Null;
            }
            s
        };
        let a = strip(generated(Flavor::Cloud, size, &GenerateOptions::default()));
        let b = strip(generated(Flavor::Cloud, size, &GenerateOptions::default()));
        assert_eq!(a, b);
        assert_eq!(a.projects.len(), 4);
        assert_eq!(a.fields.len(), 30);
        assert_eq!(a.users.len(), 40);
        assert_eq!(a.issues.len(), 12);
    }

    #[test]
    fn generated_issues_come_near_the_asked_size() {
        let size = SiteSize {
            issue_bytes: 3_000,
            ..SiteSize::default()
        };
        for flavor in [Flavor::Cloud, Flavor::DataCenter] {
            let site = generated(flavor, size, &GenerateOptions::default());
            for issue in &site.issues {
                let len = issue.to_string().len() as i64;
                assert!((len - 3_000).abs() < 400, "{flavor}: {len} bytes");
            }
        }
    }

    #[test]
    fn odd_numbered_generated_issues_are_recent_and_even_ones_older() {
        let site = generated(
            Flavor::DataCenter,
            SiteSize::default(),
            &GenerateOptions::default(),
        );
        let now = Utc::now();
        for issue in &site.issues {
            let key = issue_key(issue).expect("key");
            let number: u64 = key
                .rsplit_once('-')
                .expect("dash")
                .1
                .parse()
                .expect("number");
            let updated = parse_jira_time(issue["fields"]["updated"].as_str().expect("updated"))
                .expect("a Jira timestamp");
            let age = now - updated.with_timezone(&Utc);
            assert_eq!(
                age < Duration::days(30),
                number % 2 == 1,
                "{key} is {age} old"
            );
        }
    }

    #[test]
    fn generated_user_names_and_ids_are_unique() {
        for flavor in [Flavor::Cloud, Flavor::DataCenter] {
            let site = generated(
                flavor,
                SiteSize {
                    users: 2_000,
                    ..SiteSize::default()
                },
                &GenerateOptions::default(),
            );
            let ids: std::collections::HashSet<&str> =
                site.users.iter().filter_map(Site::user_id).collect();
            assert_eq!(ids.len(), 2_000);
        }
    }

    #[test]
    fn numbered_users_share_their_prefix_and_assignable_lists_take_the_asked_size() {
        let options = GenerateOptions {
            user_names: UserNames::Numbered {
                prefix: "e".into(),
                digits: 6,
            },
            assignable_per_project: 7,
        };
        let size = SiteSize {
            users: 1_500,
            ..SiteSize::default()
        };
        let site = generated(Flavor::DataCenter, size, &options);
        assert_eq!(site.users[1]["name"], "e000001");
        assert_eq!(site.users[1_499]["displayName"], "e001499");
        assert_eq!(site.users[12]["emailAddress"], "e000012@example.com");
        assert!(site.assignable.values().all(|ids| ids.len() == 7));
        let positions: std::collections::HashMap<&str, usize> = site
            .users
            .iter()
            .enumerate()
            .filter_map(|(i, u)| Site::user_id(u).map(|id| (id, i)))
            .collect();
        let past_1000 = site
            .assignable
            .values()
            .flatten()
            .filter(|id| positions[id.as_str()] >= 1_000)
            .count();
        assert!(past_1000 > 0, "some assignable users lie past the 1000th");
    }
}
