//! The errors of loading a profile and reading its token.
//!
//! Every message is one line that names the cause and the next step, and
//! none of them ever holds a token: not the value of an inline `token` key,
//! not the output of `token_cmd`, not the value of a token variable.

use std::fmt;
use std::path::{Path, PathBuf};

use super::ProfileSource;

/// A position in the profiles file: 1-based line, and 1-based column counted
/// in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The line, from 1.
    pub line: usize,
    /// The column, from 1, in characters (not bytes).
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text` (an offset past the
    /// end, or inside a character, is moved back to the nearest character).
    pub fn from_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Why a profile could not be loaded, or its token not read.
///
/// Every variant is a configuration error: the binaries exit with
/// [`ProfileError::exit_code`] (3).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The profiles file is not valid TOML, or a value has the wrong type.
    #[error("{}: {message} (fix the file; see profiles.example.toml)", at(path, *line, *column))]
    Toml {
        /// The profiles file.
        path: PathBuf,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
        /// What the TOML parser or the type check said.
        message: String,
    },

    /// A key the contract does not know: a typo must not be ignored.
    #[error(
        "{}: unknown key `{key}` in {section}{}; rename or remove it (profiles.example.toml lists every key)",
        at(path, *line, *column),
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default()
    )]
    UnknownKey {
        /// The profiles file.
        path: PathBuf,
        /// Line of the key, from 1.
        line: usize,
        /// Column of the key, from 1.
        column: usize,
        /// The unknown key.
        key: String,
        /// Where it is: `[profiles.NAME]`, `[profiles.NAME.ttl]`, `the top level`.
        section: String,
        /// The known key it most resembles, if one is close.
        suggestion: Option<String>,
    },

    /// An inline `token = "…"`: secrets do not go into the profiles file.
    /// The value is never shown.
    #[error(
        "{}: `token` in {section} would keep the secret in the file, which is refused; remove it and set token_env = \"VARIABLE\" (the environment variable that holds the token) or token_cmd = \"command that prints it\"",
        at(path, *line, *column)
    )]
    InlineToken {
        /// The profiles file.
        path: PathBuf,
        /// Line of the key, from 1.
        line: usize,
        /// Column of the key, from 1.
        column: usize,
        /// Where it is, as in [`ProfileError::UnknownKey`].
        section: String,
    },

    /// The profile asked for (by `--profile`, `$JIRA_PROFILE` or `default`)
    /// does not exist.
    #[error(
        "no profile `{name}` in {origin}; known: {}; {}",
        known_list(known),
        unknown_profile_hint(origin)
    )]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The file (or the environment) that was searched.
        origin: ProfileSource,
        /// The profiles that do exist.
        known: Vec<String>,
    },

    /// Several profiles, and nothing says which one to use.
    #[error(
        "{} has several profiles ({}) and no `default`; pass --profile NAME, set $JIRA_PROFILE, or add default = \"NAME\" at the top of the file",
        path.display(),
        known_list(known)
    )]
    AmbiguousProfile {
        /// The profiles file.
        path: PathBuf,
        /// Its profiles.
        known: Vec<String>,
    },

    /// The profiles file has no `[profiles.NAME]` table.
    #[error(
        "{} defines no profile; add a [profiles.NAME] table with at least url = \"https://…\" (see profiles.example.toml)",
        path.display()
    )]
    NoProfiles {
        /// The profiles file.
        path: PathBuf,
    },

    /// No profiles file was found and `JIRA_SITE_URL` is not set.
    #[error(
        "no profile: {} and JIRA_SITE_URL is not set; create the file from profiles.example.toml, or set JIRA_SITE_URL, JIRA_EMAIL and JIRA_API_TOKEN",
        searched_list(searched)
    )]
    NoProfile {
        /// Where a profiles file was looked for.
        searched: Vec<PathBuf>,
    },

    /// A profiles file named by `--config` or `$JIRA_CACHE_CONFIG` does not
    /// exist.
    #[error(
        "profiles file {} (given by {given_by}) does not exist; fix the path, or create the file from profiles.example.toml",
        path.display()
    )]
    ConfigNotFound {
        /// The path that was given.
        path: PathBuf,
        /// Who gave it: `--config` or `$JIRA_CACHE_CONFIG`.
        given_by: &'static str,
    },

    /// A value that parses as TOML but means nothing valid: a bad URL,
    /// duration, size, rate, percentage, project key, and so on.
    #[error(
        "{}: profile `{profile}`: {key}: {message}",
        invalid_origin(origin, location)
    )]
    Invalid {
        /// The file (or the environment) the profile came from.
        origin: ProfileSource,
        /// Where the value is in the file; `None` for the environment.
        location: Option<Location>,
        /// The profile.
        profile: String,
        /// The key (`timeout`, `ttl.issue_recent`), or in the environment
        /// the variable (`JIRA_SITE_URL`).
        key: String,
        /// What is wrong and how to fix it. Never holds a secret.
        message: String,
    },

    /// The variable named by `token_env` (or `serve_token_env`) is unset
    /// or empty.
    #[error(
        "profile `{profile}`: no {what}: environment variable {variable} is not set or empty; export it, or set {command_key} in the profile"
    )]
    TokenMissing {
        /// The profile.
        profile: String,
        /// The variable that should hold the token.
        variable: String,
        /// Which token: "API token" or "cache_serve token".
        what: &'static str,
        /// The key that would run a command instead: `token_cmd` or
        /// `serve_token_cmd`.
        command_key: &'static str,
    },

    /// `token_cmd` could not run, failed, or printed no usable token. The
    /// reason never includes what the command printed on stdout.
    #[error(
        "profile `{profile}`: {command_key} {reason}; run it by hand to see why, or fix {command_key}"
    )]
    TokenCommandFailed {
        /// The profile.
        profile: String,
        /// The key that holds the command: `token_cmd`, `serve_token_cmd`
        /// or `cache_password_cmd`.
        command_key: &'static str,
        /// The command, as written in the profile: never shown, since any
        /// word of it may be a secret (`VAULT_TOKEN=… vault read x`).
        command: String,
        /// Exit status and the first line of stderr, a timeout, or why the
        /// output was refused.
        reason: String,
    },

    /// The profiles file can be written by other users, and it names a
    /// `token_cmd`: running it would run whatever they put there.
    #[error("{}: {reason}", path.display())]
    UnsafeFile {
        /// The profiles file.
        path: PathBuf,
        /// The mode found and the `chmod` that fixes it.
        reason: String,
    },

    /// The profiles file exists but cannot be read.
    #[error("cannot read {}: {source}; check the path and its permissions", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl ProfileError {
    /// The exit code of every profile error (`CONVENTIONS.md`: 3, profile or
    /// configuration error, credentials missing).
    pub fn exit_code(&self) -> i32 {
        3
    }
}

fn at(path: &Path, line: usize, column: usize) -> String {
    format!("{}:{line}:{column}", path.display())
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    }
}

fn unknown_profile_hint(source: &ProfileSource) -> String {
    match source {
        ProfileSource::File(_) => {
            "pass one of them with --profile or $JIRA_PROFILE, or fix the name".to_owned()
        }
        ProfileSource::Environment => "without a profiles file only `default` exists; \
             create profiles.toml (see profiles.example.toml) to have named profiles"
            .to_owned(),
    }
}

fn searched_list(searched: &[PathBuf]) -> String {
    if searched.is_empty() {
        "no profiles file could be looked for (neither HOME nor XDG_CONFIG_HOME is set)".to_owned()
    } else {
        let paths: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
        format!("no profiles file at {}", paths.join(", "))
    }
}

fn invalid_origin(source: &ProfileSource, location: &Option<Location>) -> String {
    match (source, location) {
        (ProfileSource::File(path), Some(location)) => format!("{}:{location}", path.display()),
        (source, _) => source.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::from_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        let offset = text.find('=').unwrap();
        assert_eq!(
            Location::from_offset(text, offset),
            Location { line: 1, column: 3 }
        );
        let offset = text.rfind('=').unwrap();
        assert_eq!(
            Location::from_offset(text, offset),
            Location { line: 2, column: 4 }
        );
        assert_eq!(
            Location::from_offset(text, 10_000),
            Location { line: 3, column: 1 }
        );
    }

    #[test]
    fn every_error_has_exit_code_three() {
        let err = ProfileError::NoProfile { searched: vec![] };
        assert_eq!(err.exit_code(), 3);
    }

    #[test]
    fn no_profile_says_where_it_looked_and_how_to_fix_it() {
        let err = ProfileError::NoProfile {
            searched: vec![PathBuf::from("/home/u/.config/jira-cache/profiles.toml")],
        };
        let text = err.to_string();
        assert!(
            text.contains("/home/u/.config/jira-cache/profiles.toml"),
            "{text}"
        );
        assert!(text.contains("profiles.example.toml"), "{text}");
        assert!(text.contains("JIRA_SITE_URL"), "{text}");
    }
}
