//! What `cache_warm --print-cron`/`--print-systemd` and `cache_serve
//! --print-systemd` share: where a scheduled job's environment file is,
//! what it must hold, shell quoting, and the warning for a binary in a
//! Cargo build directory.

use std::path::{Path, PathBuf};

use jira_cache::profile::{Profile, ProfileSource};

/// The file a job started by cron or systemd reads its environment from:
/// beside the profiles file, or in the cache directory for a profile that
/// comes from the environment.
pub fn env_file(profile: &Profile) -> PathBuf {
    let dir = match &profile.source {
        ProfileSource::File(path) => path.parent().map(Path::to_path_buf),
        ProfileSource::Environment => None,
    };
    dir.unwrap_or_else(|| profile.cache_dir.clone())
        .join(format!("{}.env", profile.name))
}

/// The comment above a job that reads [`env_file`]: what the file holds
/// (the token's variable; for a profile from the environment, the
/// profile's own variables too, since cron and systemd start with none of
/// the user's environment), in the one format both read: `NAME=value`
/// lines, which systemd's `EnvironmentFile=` takes and cron's shell reads
/// with `set -a`.
pub fn env_file_note(profile: &Profile, var: &str) -> String {
    let file = env_file(profile);
    let lines = match profile.source {
        ProfileSource::File(_) => format!("one line `{var}=<token>`"),
        ProfileSource::Environment => format!(
            "the lines `JIRA_SITE_URL=<site>`, `JIRA_EMAIL=<email>` (Cloud) and `{var}=<token>`, \
             and any other JIRA_* variable the profile takes from your environment \
             (JIRA_DEPLOYMENT, JIRA_AUTH_TYPE, JIRA_CACHE_URL)"
        ),
    };
    format!(
        "# {file} holds {lines} (no `export`, no quotes; chmod 600).\n\
         # Cron and systemd both read it as is. Better: set token_cmd in the profile (e.g. token_cmd = \"pass show jira\").\n",
        file = file.display()
    )
}

/// `s` quoted for a shell (and a systemd `ExecStart=`) when it needs it.
pub fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The absolute path of the running binary, or `name` when it cannot be
/// found.
pub fn binary(name: &str) -> PathBuf {
    std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .unwrap_or_else(|_| PathBuf::from(name))
}

/// A warning when `binary` sits in a Cargo build directory
/// (`target/debug`, `target/release`, …): `cargo build` replaces it and
/// `cargo clean` deletes it, so a schedule or a service must not point there.
pub fn build_directory_warning(binary: &Path) -> Option<String> {
    let parent = binary.parent()?;
    let profile_dir = parent.file_name()?.to_str()?;
    let in_target = parent
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|n| n == "target");
    let name = binary.file_name()?.to_str()?;
    (in_target && matches!(profile_dir, "debug" | "release")).then(|| {
        format!(
            "warning: {} is in a Cargo build directory, which `cargo build` replaces and `cargo clean` deletes; \
             install it (`cargo install --path . --locked`) and print this again with the installed {name}",
            binary.display()
        )
    })
}
