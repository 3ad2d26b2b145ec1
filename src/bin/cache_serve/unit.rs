//! `--print-systemd`: a user service that keeps `cache_serve` running.

use jira_cache::profile::{Profile, ProfileSource, TokenSource};

/// The unit file, with how to install it.
pub fn systemd(profile: &Profile, warm: bool) -> String {
    let binary = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "cache_serve".into());
    let mut command = vec![quote(&binary)];
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
        TokenSource::Env(var) => format!(
            "# This file holds {var}=... (no `export`; chmod 600), or set token_cmd in the profile and drop this line.\n\
             EnvironmentFile=%h/.config/jira-cache/{}.env\n",
            profile.name
        ),
        TokenSource::Command(_) => String::new(),
    };
    format!(
        "# ~/.config/systemd/user/{unit}.service\n\
         [Unit]\n\
         Description=Serve the Jira cache of profile {name} as a local Jira endpoint\n\
         After=network-online.target\n\
         \n\
         [Service]\n\
         {env_line}\
         ExecStart={command}\n\
         # SIGTERM: the requests under way finish, then it exits 0.\n\
         KillSignal=SIGTERM\n\
         Restart=on-failure\n\
         RestartSec=5\n\
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

fn quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
