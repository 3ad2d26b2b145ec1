//! The profiles file as written: TOML syntax, the key check, and the raw
//! (unvalidated) tables.
//!
//! The key check walks the parsed document before any typed
//! deserialization, so that an inline `token` and an unknown key are
//! reported with their section and line:column, and an inline token's value
//! is never quoted. `deny_unknown_fields` on the raw types stays as a
//! second guard.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Location, ProfileError};
use super::{ProfileSource, is_valid_profile_name};

/// The keys of a `[profiles.NAME]` table, in the contract's order.
pub(crate) const PROFILE_KEYS: &[&str] = &[
    "url",
    "deployment",
    "auth",
    "email",
    "token_env",
    "token_cmd",
    "rate_limit",
    "burst",
    "concurrency",
    "timeout",
    "projects",
    "issue_fields",
    "max_size",
    "max_response",
    "quiet_hours",
    "schedule",
    "cache_dir",
    "cache_url",
    "cache_password_env",
    "cache_password_cmd",
    "cache_schema",
    "ca_file",
    "allow_insecure_http",
    "max_stale",
    "serve_listen",
    "serve_token_env",
    "serve_token_cmd",
    "ttl",
    "check",
];

/// The keys of `[profiles.NAME.ttl]`.
pub(crate) const TTL_KEYS: &[&str] = &["project", "field", "user", "issue_recent", "issue_old"];

/// The keys of `[profiles.NAME.check]`.
pub(crate) const CHECK_KEYS: &[&str] = &[
    "warn_age",
    "crit_age",
    "warn_expired",
    "crit_expired",
    "warn_hit_rate",
];

const TOP_KEYS: &[&str] = &["default", "profiles"];

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub default: Option<Spanned<String>>,
    #[serde(default)]
    pub profiles: BTreeMap<String, RawProfile>,
}

/// One `[profiles.NAME]` table. Values keep their span, for errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfile {
    pub url: Option<Spanned<String>>,
    pub deployment: Option<Spanned<String>>,
    pub auth: Option<Spanned<String>>,
    pub email: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub token_cmd: Option<Spanned<String>>,
    pub rate_limit: Option<Spanned<toml::Value>>,
    pub burst: Option<Spanned<i64>>,
    pub concurrency: Option<Spanned<i64>>,
    pub timeout: Option<Spanned<String>>,
    pub projects: Option<Spanned<Vec<String>>>,
    pub issue_fields: Option<Spanned<Vec<String>>>,
    pub max_size: Option<Spanned<toml::Value>>,
    pub max_response: Option<Spanned<toml::Value>>,
    pub quiet_hours: Option<Spanned<String>>,
    pub schedule: Option<Spanned<String>>,
    pub cache_dir: Option<Spanned<String>>,
    pub cache_url: Option<Spanned<String>>,
    pub cache_password_env: Option<Spanned<String>>,
    pub cache_password_cmd: Option<Spanned<String>>,
    pub cache_schema: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub allow_insecure_http: Option<Spanned<bool>>,
    pub max_stale: Option<Spanned<String>>,
    pub serve_listen: Option<Spanned<String>>,
    pub serve_token_env: Option<Spanned<String>>,
    pub serve_token_cmd: Option<Spanned<String>>,
    #[serde(default)]
    pub ttl: RawTtl,
    #[serde(default)]
    pub check: RawCheck,
}

/// `[profiles.NAME.ttl]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTtl {
    pub project: Option<Spanned<String>>,
    pub field: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    pub issue_recent: Option<Spanned<String>>,
    pub issue_old: Option<Spanned<String>>,
}

/// `[profiles.NAME.check]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub warn_age: Option<Spanned<String>>,
    pub crit_age: Option<Spanned<String>>,
    pub warn_expired: Option<Spanned<String>>,
    pub crit_expired: Option<Spanned<String>>,
    pub warn_hit_rate: Option<Spanned<String>>,
}

/// Parses the text of the profiles file at `path` (the path is for
/// messages): syntax, then the key check, then the raw types.
pub(crate) fn parse_file(text: &str, path: &Path) -> Result<RawFile, ProfileError> {
    let document = DeTable::parse(text).map_err(|e| toml_error(text, path, &e))?;
    check_keys(document.get_ref(), text, path)?;
    toml::from_str(text).map_err(|e| toml_error(text, path, &e))
}

fn toml_error(text: &str, path: &Path, error: &toml::de::Error) -> ProfileError {
    let location = error
        .span()
        .map_or(Location { line: 1, column: 1 }, |span| {
            Location::from_offset(text, span.start)
        });
    ProfileError::Toml {
        path: path.to_path_buf(),
        line: location.line,
        column: location.column,
        // `message()` rather than `Display`: `Display` quotes the source
        // line, which could hold a secret next to the error.
        message: match key_on_line(text, location.line) {
            Some(key) => format!("`{key}`: {}", plain_words(error.message().trim())),
            None => plain_words(error.message().trim()),
        },
    }
}

/// The key assigned on a line (`burst = "ten"` → `burst`), to name it in a
/// type error; only the key, never the value, which could be a secret.
fn key_on_line(text: &str, line: usize) -> Option<&str> {
    let (key, _) = text.lines().nth(line.checked_sub(1)?)?.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    bare.then_some(key)
}

/// Serde names Rust types in its messages; say TOML's words instead.
fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        (
            "expected struct RawProfile",
            "expected a [profiles.NAME] table",
        ),
        (
            "expected struct RawTtl",
            "expected a [profiles.NAME.ttl] table",
        ),
        (
            "expected struct RawCheck",
            "expected a [profiles.NAME.check] table",
        ),
        ("expected struct RawFile", "expected a table"),
        ("expected i64", "expected an integer"),
        ("expected a sequence", "expected an array"),
        ("expected a map", "expected a table"),
        ("invalid type: sequence", "invalid type: array"),
        ("invalid type: map", "invalid type: table"),
    ];
    WORDS
        .iter()
        .fold(message.to_owned(), |m, (from, to)| m.replace(from, to))
}

/// One finding of the key check.
struct Finding {
    span: Range<usize>,
    key: String,
    section: String,
    known: &'static [&'static str],
    kind: FindingKind,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FindingKind {
    // Ordered by priority: a secret in the file is reported before a typo.
    InlineToken,
    BadProfileName,
    UnknownKey,
}

fn check_keys(document: &DeTable<'_>, text: &str, path: &Path) -> Result<(), ProfileError> {
    let mut findings = Vec::new();
    check_table(document, TOP_KEYS, "the top level", &mut findings);
    if let Some(profiles) = table_of(document, "profiles") {
        for (name, profile) in profiles {
            let name_str: &str = name.get_ref();
            if !is_valid_profile_name(name_str) {
                findings.push(Finding {
                    span: name.span(),
                    key: name_str.to_owned(),
                    section: "[profiles]".to_owned(),
                    known: &[],
                    kind: FindingKind::BadProfileName,
                });
            }
            let DeValue::Table(profile) = profile.get_ref() else {
                continue;
            };
            let section = format!("[profiles.{name_str}]");
            check_table(profile, PROFILE_KEYS, &section, &mut findings);
            for (sub, keys) in [("ttl", TTL_KEYS), ("check", CHECK_KEYS)] {
                if let Some(table) = table_of(profile, sub) {
                    let section = format!("[profiles.{name_str}.{sub}]");
                    check_table(table, keys, &section, &mut findings);
                }
            }
        }
    }
    let Some(first) = findings.into_iter().min_by_key(|f| (f.kind, f.span.start)) else {
        return Ok(());
    };
    let location = Location::from_offset(text, first.span.start);
    let path = path.to_path_buf();
    Err(match first.kind {
        FindingKind::InlineToken => ProfileError::InlineToken {
            path,
            line: location.line,
            column: location.column,
            section: first.section,
        },
        FindingKind::BadProfileName => ProfileError::Invalid {
            origin: ProfileSource::File(path),
            location: Some(location),
            profile: first.key,
            key: "profile name".to_owned(),
            message: "a profile name may hold only ASCII letters, digits, `-` and `_` \
                      (it names the cache file); rename the table"
                .to_owned(),
        },
        FindingKind::UnknownKey => ProfileError::UnknownKey {
            path,
            line: location.line,
            column: location.column,
            suggestion: suggest(&first.key, first.known),
            key: first.key,
            section: first.section,
        },
    })
}

fn check_table(
    table: &DeTable<'_>,
    known: &'static [&'static str],
    section: &str,
    findings: &mut Vec<Finding>,
) {
    for key in table.keys() {
        let name: &str = key.get_ref();
        if known.contains(&name) {
            continue;
        }
        let kind = if name == "token" {
            FindingKind::InlineToken
        } else {
            FindingKind::UnknownKey
        };
        findings.push(Finding {
            span: key.span(),
            key: name.to_owned(),
            section: section.to_owned(),
            known,
            kind,
        });
    }
}

fn table_of<'a, 'i>(table: &'a DeTable<'i>, key: &str) -> Option<&'a DeTable<'i>> {
    table.iter().find_map(|(k, v)| match v.get_ref() {
        DeValue::Table(t) if k.get_ref() == key => Some(t),
        _ => None,
    })
}

/// The known key closest to `key`, if it is a plausible typo of it.
fn suggest(key: &str, known: &[&str]) -> Option<String> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k.to_owned())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_errors_speak_toml_not_rust() {
        let path = Path::new("/p.toml");
        for (text, expected) in [
            ("[profiles.p]\nburst = \"ten\"\n", "expected an integer"),
            ("[profiles]\np = 3\n", "expected a [profiles.NAME] table"),
            ("[profiles.p]\nprojects = \"PROJ\"\n", "expected an array"),
            (
                "[[profiles]]\nurl = 3\n",
                "invalid type: array, expected a table",
            ),
        ] {
            let err = parse_file(text, path).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(!err.contains("Raw"), "{err}");
        }
    }

    #[test]
    fn suggestions_catch_typos_but_not_unrelated_words() {
        assert_eq!(suggest("tiemout", PROFILE_KEYS).as_deref(), Some("timeout"));
        assert_eq!(
            suggest("rate-limit", PROFILE_KEYS).as_deref(),
            Some("rate_limit")
        );
        assert_eq!(
            suggest("issue_recnt", TTL_KEYS).as_deref(),
            Some("issue_recent")
        );
        assert_eq!(suggest("colour", PROFILE_KEYS), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
