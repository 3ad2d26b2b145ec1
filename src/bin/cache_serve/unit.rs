//! `--print-systemd`: a user service that keeps `cache_serve` running.

use std::path::Path;

use jira_cache::profile::{Profile, ProfileSource, TokenSource};

use crate::common::recipe::{self, env_file, env_file_note, quote};

/// The unit file, with how to install it, and a warning for stderr when
/// the running binary is one `cargo build` replaces.
pub fn systemd(profile: &Profile, warm: bool) -> (String, Option<String>) {
    let binary = recipe::binary("cache_serve");
    (
        unit_for(profile, warm, &binary),
        recipe::build_directory_warning(&binary),
    )
}

fn unit_for(profile: &Profile, warm: bool, binary: &Path) -> String {
    let mut command = vec![quote(&binary.display().to_string())];
    if let ProfileSource::File(path) = &profile.source {
        command.push("--config".into());
        command.push(quote(&path.display().to_string()));
    }
    command.extend(["--profile".into(), quote(&profile.name)]);
    if warm {
        command.push("--warm".into());
    }
    let unit = format!("jira-cache-serve-{}", profile.name);
    let env_line = match &profile.token {
        // The file `cache_warm --print-systemd` names: one file serves both.
        TokenSource::Env(var) => format!(
            "{}EnvironmentFile={}\n",
            env_file_note(profile, var),
            env_file(profile).display()
        ),
        TokenSource::Command(_) => String::new(),
    };
    format!(
        "# ~/.config/systemd/user/{unit}.service\n\
         [Unit]\n\
         Description=Serve the Jira cache of profile {name} as a local Jira endpoint\n\
         \n\
         [Service]\n\
         {env_line}\
         ExecStart={command}\n\
         # SIGTERM: the requests under way finish (30 s at most), then it exits 0.\n\
         KillSignal=SIGTERM\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         # Usage, profile and cache-file errors (exits 2, 3, 7) need a person, not a restart.\n\
         RestartPreventExitStatus=2 3 7\n\
         NoNewPrivileges=true\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n\
         \n\
         # Then: systemctl --user daemon-reload && systemctl --user enable --now {unit}.service\n",
        name = profile.name,
        command = command.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use jira_cache::profile::{Env, LoadOptions};

    #[test]
    fn the_unit_reads_the_env_file_cache_warm_names_and_does_not_restart_on_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("team.toml");
        std::fs::write(
            &path,
            "[profiles.prod]\nurl = \"https://example.atlassian.net\"\nemail = \"a@b.c\"\ncache_dir = \"/var/cache/jc\"\n",
        )
        .unwrap();
        let options = LoadOptions {
            config: Some(path),
            profile: None,
            env: Env::from_pairs([("HOME", "/home/a"), ("JIRA_API_TOKEN", "t")]),
        };
        let profile = jira_cache::profile::load(&options).unwrap();
        let unit = unit_for(&profile, false, Path::new("/usr/bin/cache_serve"));
        let expected = format!("EnvironmentFile={}", dir.path().join("prod.env").display());
        assert!(unit.lines().any(|l| l == expected), "{unit}");
        assert!(
            unit.lines().any(|l| l == "RestartPreventExitStatus=2 3 7"),
            "{unit}"
        );
        assert!(!unit.contains("network-online"), "{unit}");
        assert_eq!(
            recipe::build_directory_warning(Path::new("/usr/bin/cache_serve")),
            None
        );
        let warning =
            recipe::build_directory_warning(Path::new("/src/jc/target/debug/cache_serve")).unwrap();
        assert!(warning.contains("installed cache_serve"), "{warning}");
    }

    #[test]
    fn a_profile_from_the_environment_needs_its_variables_in_the_env_file() {
        let options = LoadOptions {
            config: None,
            profile: None,
            env: Env::from_pairs([
                ("HOME", "/home/a"),
                ("XDG_CONFIG_HOME", "/nonexistent/config"),
                ("JIRA_SITE_URL", "https://example.atlassian.net"),
                ("JIRA_EMAIL", "a@b.c"),
                ("JIRA_API_TOKEN", "t"),
            ]),
        };
        let profile = jira_cache::profile::load(&options).unwrap();
        assert_eq!(profile.source, ProfileSource::Environment);
        let note = env_file_note(&profile, "JIRA_API_TOKEN");
        for var in ["JIRA_SITE_URL=", "JIRA_EMAIL=", "JIRA_API_TOKEN="] {
            assert!(note.contains(var), "{var}: {note}");
        }
    }
}
