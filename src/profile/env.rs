//! A snapshot of the environment, and the platform directories derived
//! from it.
//!
//! Loading a profile reads variables (`JIRA_CACHE_CONFIG`, `JIRA_PROFILE`,
//! `JIRA_SITE_URL`, the token variable, `HOME`, `XDG_*`) only through an
//! [`Env`], never from the process directly, so that tests can give each case
//! its own environment and never read the real machine's configuration.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

/// The application's directory name under the platform config and cache
/// directories.
const APP_DIR: &str = "jira-cache";

/// The profiles file's name in the platform config directory.
const PROFILES_FILE: &str = "profiles.toml";

/// A snapshot of environment variables.
///
/// Its `Debug` shows only how many variables it holds: the snapshot usually
/// carries the API token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// The current process's environment (variables whose name or value is
    /// not UTF-8 are left out).
    pub fn from_process() -> Env {
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of exactly these variables.
    pub fn from_pairs<I, K, V>(pairs: I) -> Env
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The value of `name`, even when empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value of `name`, with an empty value counted as unset.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Sets `name` to `value` in this snapshot (not in the process).
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// The home directory: `$HOME` if absolute, else the platform's.
    pub fn home_dir(&self) -> Option<PathBuf> {
        self.absolute("HOME")
            .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()))
    }

    /// The default profiles file: `<config dir>/jira-cache/profiles.toml`,
    /// i.e. `~/.config/jira-cache/profiles.toml` on Linux.
    pub fn default_config_file(&self) -> Option<PathBuf> {
        self.config_base()
            .map(|d| d.join(APP_DIR).join(PROFILES_FILE))
    }

    /// The default cache directory: `<cache dir>/jira-cache`, i.e.
    /// `~/.cache/jira-cache` on Linux.
    pub fn default_cache_dir(&self) -> Option<PathBuf> {
        self.cache_base().map(|d| d.join(APP_DIR))
    }

    /// `$XDG_CONFIG_HOME`, else (outside macOS and Windows) `$HOME/.config`,
    /// else the platform's config directory.
    fn config_base(&self) -> Option<PathBuf> {
        self.xdg_base("XDG_CONFIG_HOME", ".config")
            .or_else(|| directories::BaseDirs::new().map(|d| d.config_dir().to_path_buf()))
    }

    /// `$XDG_CACHE_HOME`, else (outside macOS and Windows) `$HOME/.cache`,
    /// else the platform's cache directory.
    fn cache_base(&self) -> Option<PathBuf> {
        self.xdg_base("XDG_CACHE_HOME", ".cache")
            .or_else(|| directories::BaseDirs::new().map(|d| d.cache_dir().to_path_buf()))
    }

    fn xdg_base(&self, variable: &str, under_home: &str) -> Option<PathBuf> {
        // The XDG spec says a relative value is to be ignored. macOS and
        // Windows have their own directories; an XDG variable set there is
        // still honoured, because it is set on purpose.
        self.absolute(variable).or_else(|| {
            if cfg!(any(target_os = "macos", windows)) {
                None
            } else {
                self.absolute("HOME").map(|home| home.join(under_home))
            }
        })
    }

    fn absolute(&self, variable: &str) -> Option<PathBuf> {
        self.get_nonempty(variable)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Env {{ {} variables }}", self.vars.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_variables_win_over_home() {
        let env = Env::from_pairs([
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/xdg/config"),
            ("XDG_CACHE_HOME", "/xdg/cache"),
        ]);
        assert_eq!(
            env.default_config_file().unwrap(),
            PathBuf::from("/xdg/config/jira-cache/profiles.toml")
        );
        assert_eq!(
            env.default_cache_dir().unwrap(),
            PathBuf::from("/xdg/cache/jira-cache")
        );
    }

    #[cfg(not(any(target_os = "macos", windows)))]
    #[test]
    fn home_gives_dot_config_and_dot_cache_when_xdg_is_unset_or_relative() {
        let env = Env::from_pairs([("HOME", "/home/u"), ("XDG_CONFIG_HOME", "relative")]);
        assert_eq!(
            env.default_config_file().unwrap(),
            PathBuf::from("/home/u/.config/jira-cache/profiles.toml")
        );
        assert_eq!(
            env.default_cache_dir().unwrap(),
            PathBuf::from("/home/u/.cache/jira-cache")
        );
    }

    #[test]
    fn debug_shows_no_value() {
        let env = Env::from_pairs([("JIRA_API_TOKEN", "s3cr3t-value")]);
        let shown = format!("{env:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains("JIRA_API_TOKEN"), "{shown}");
    }

    #[test]
    fn empty_values_count_as_unset_for_get_nonempty() {
        let env = Env::from_pairs([("A", "")]);
        assert_eq!(env.get("A"), Some(""));
        assert_eq!(env.get_nonempty("A"), None);
    }
}
