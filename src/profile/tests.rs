//! Tests of loading profiles: defaults, every key, the errors, the look-up
//! order, tokens and redaction. Every test builds its own environment
//! snapshot and temporary files; none reads the real machine's.

use std::fs;

use chrono::NaiveTime;
use tempfile::TempDir;

use super::*;

const TOKEN: &str = "s3cr3t-T0KEN-value";
const FILE: &str = "/etc/jira-cache/profiles.toml";

/// An environment with fixed directories and the default token variable.
fn test_env() -> Env {
    Env::from_pairs([
        ("HOME", "/home/u"),
        ("XDG_CONFIG_HOME", "/nonexistent/config"),
        ("XDG_CACHE_HOME", "/xdg/cache"),
        ("JIRA_API_TOKEN", TOKEN),
    ])
}

/// Loads `text` as if read from [`FILE`], with `--profile` unset.
fn parse(text: &str) -> Result<Profile, ProfileError> {
    parse_str(text, Path::new(FILE), None, &test_env())
}

/// A profile `p` with `url` plus `extra` lines.
fn with(extra: &str) -> Result<Profile, ProfileError> {
    parse(&format!(
        "[profiles.p]\nurl = \"https://example.atlassian.net\"\n{extra}\n"
    ))
}

/// A temporary machine: HOME, XDG_CONFIG_HOME and XDG_CACHE_HOME inside a
/// temporary directory, and no profiles file yet.
struct Machine {
    dir: TempDir,
    env: Env,
}

impl Machine {
    fn new() -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let env = Env::from_pairs([
            ("HOME", root.join("home").display().to_string()),
            ("XDG_CONFIG_HOME", root.join("config").display().to_string()),
            ("XDG_CACHE_HOME", root.join("cache").display().to_string()),
        ]);
        Machine { dir, env }
    }

    fn platform_file(&self) -> PathBuf {
        self.dir.path().join("config/jira-cache/profiles.toml")
    }

    fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, text).unwrap();
        path
    }

    fn write_platform(&self, text: &str) -> PathBuf {
        self.write("config/jira-cache/profiles.toml", text)
    }

    fn opts(&self) -> LoadOptions {
        LoadOptions {
            config: None,
            profile: None,
            env: self.env.clone(),
        }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.env.set(name, value);
    }
}

fn one_profile(name: &str) -> String {
    format!("[profiles.{name}]\nurl = \"https://{name}.example.com\"\n")
}

fn expect_invalid(result: Result<Profile, ProfileError>, key: &str, needle: &str) -> String {
    match result {
        Err(err @ ProfileError::Invalid { .. }) => {
            let ProfileError::Invalid { key: found, .. } = &err else {
                unreachable!()
            };
            assert_eq!(found, key, "{err}");
            let text = err.to_string();
            assert!(text.contains(needle), "`{needle}` not in: {text}");
            text
        }
        other => panic!("expected Invalid for {key}, got {other:?}"),
    }
}

#[test]
fn defaults_apply_when_a_profile_gives_only_a_url() {
    let p = with("").unwrap();
    assert_eq!(p.name, "p");
    assert_eq!(p.source, ProfileSource::File(PathBuf::from(FILE)));
    assert_eq!(p.url.as_str(), "https://example.atlassian.net/");
    assert_eq!(p.deployment, None);
    assert_eq!(p.auth, None);
    assert_eq!(p.email, None);
    assert_eq!(p.token, TokenSource::Env("JIRA_API_TOKEN".into()));
    assert_eq!(p.rate_limit, RateLimit::PerSecond(10.0));
    assert_eq!(p.burst, 10);
    assert_eq!(p.concurrency, 4);
    assert_eq!(p.timeout, Duration::from_secs(30));
    assert!(p.projects.is_empty());
    assert_eq!(
        p.issue_fields,
        DEFAULT_ISSUE_FIELDS.map(String::from).to_vec()
    );
    assert_eq!(p.max_size, 500 * 1024 * 1024);
    assert_eq!(p.quiet_hours, None);
    assert_eq!(p.schedule, "0 6 * * *");
    assert_eq!(p.cache_dir, PathBuf::from("/xdg/cache/jira-cache"));
    assert_eq!(p.ca_file, None);
    assert!(!p.allow_insecure_http);
    assert_eq!(p.max_stale, Duration::from_secs(86_400));
    assert_eq!(p.ttl, Ttls::default());
    assert_eq!(p.ttl.issue_recent, Duration::from_secs(300));
    assert_eq!(p.ttl.issue_old, Duration::from_secs(3_600));
    assert_eq!(p.check, CheckThresholds::default());
    assert_eq!(p.check.warn_age, Duration::from_secs(26 * 3_600));
    assert_eq!(p.check.crit_age, Duration::from_secs(50 * 3_600));
    assert_eq!(
        (
            p.check.warn_expired,
            p.check.crit_expired,
            p.check.warn_hit_rate
        ),
        (0.5, 0.9, 0.5)
    );
    assert_eq!(
        p.cache_path(),
        PathBuf::from("/xdg/cache/jira-cache/p.sqlite3")
    );
    assert_eq!(p.lock_path(), PathBuf::from("/xdg/cache/jira-cache/p.lock"));
}

#[test]
fn every_key_of_the_contract_parses() {
    let machine = Machine::new();
    machine.write("etc/corp-ca.pem", "-----BEGIN CERTIFICATE-----\n");
    let path = machine.write(
        "etc/profiles.toml",
        r#"
default = "production"

[profiles.production]
url = "https://jira.example.com/jira/"
deployment = "datacenter"
auth = "basic"
email = "svc-jira"
token_env = "MY_TOKEN"
rate_limit = 2.5
burst = 3
concurrency = 8
timeout = "1m"
projects = ["PROJ", "OPS", "PROJ"]
issue_fields = ["summary", "customfield_10010"]
max_size = "1GiB"
quiet_hours = "09:00-17:00"
schedule = "15  7 * * 1-5"
cache_dir = "/var/cache/jira-cache"
ca_file = "corp-ca.pem"
allow_insecure_http = true
max_stale = "2d"

[profiles.production.ttl]
project = "2d"
field = "3d"
user = "4h"
issue_recent = "1m"
issue_old = "2h"

[profiles.production.check]
warn_age = "1h"
crit_age = "2h"
warn_expired = "10%"
crit_expired = "20%"
warn_hit_rate = "75%"
"#,
    );
    let p = parse_str(
        &fs::read_to_string(&path).unwrap(),
        &path,
        None,
        &machine.env,
    )
    .unwrap();
    assert_eq!(p.name, "production");
    assert_eq!(p.url.as_str(), "https://jira.example.com/jira/");
    assert_eq!(p.deployment, Some(Deployment::DataCenter));
    assert_eq!(p.auth, Some(AuthKind::Basic));
    assert_eq!(p.email.as_deref(), Some("svc-jira"));
    assert_eq!(p.token, TokenSource::Env("MY_TOKEN".into()));
    assert_eq!(p.rate_limit, RateLimit::PerSecond(2.5));
    assert_eq!(p.burst, 3);
    assert_eq!(p.concurrency, 8);
    assert_eq!(p.timeout, Duration::from_secs(60));
    assert_eq!(p.projects, ["PROJ", "OPS"]);
    assert_eq!(p.issue_fields, ["summary", "customfield_10010"]);
    assert_eq!(p.max_size, 1 << 30);
    assert_eq!(p.quiet_hours.unwrap().to_string(), "09:00-17:00");
    assert_eq!(p.schedule, "15 7 * * 1-5");
    assert_eq!(p.cache_dir, PathBuf::from("/var/cache/jira-cache"));
    assert_eq!(p.ca_file, Some(path.parent().unwrap().join("corp-ca.pem")));
    assert!(p.allow_insecure_http);
    assert_eq!(p.max_stale, Duration::from_secs(2 * 86_400));
    assert_eq!(
        p.ttl,
        Ttls {
            project: Duration::from_secs(2 * 86_400),
            field: Duration::from_secs(3 * 86_400),
            user: Duration::from_secs(4 * 3_600),
            issue_recent: Duration::from_secs(60),
            issue_old: Duration::from_secs(2 * 3_600),
        }
    );
    assert_eq!(
        p.check,
        CheckThresholds {
            warn_age: Duration::from_secs(3_600),
            crit_age: Duration::from_secs(7_200),
            warn_expired: 0.1,
            crit_expired: 0.2,
            warn_hit_rate: 0.75,
        }
    );
    assert_eq!(
        p.cache_path(),
        PathBuf::from("/var/cache/jira-cache/production.sqlite3")
    );
}

#[test]
fn the_example_file_loads_with_the_token_from_the_environment() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/profiles.example.toml"
    ));
    let mut env = test_env();
    env.set("JIRA_DC_TOKEN", "dc-pat-value");
    let opts = LoadOptions {
        config: Some(path.to_path_buf()),
        profile: None,
        env,
    };

    let cloud = load(&opts).unwrap();
    assert_eq!(cloud.name, "production");
    assert_eq!(cloud.deployment, Some(Deployment::Cloud));
    let Credentials::Basic { email, token } = cloud.credentials(Deployment::Cloud).unwrap() else {
        panic!("cloud uses basic auth");
    };
    assert_eq!(email, "bot@example.com");
    assert_eq!(token.expose(), TOKEN);

    let all = load_all(&opts).unwrap();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["datacenter", "production"]);
    let dc = &all[0];
    assert_eq!(dc.url.as_str(), "https://jira.example.com/jira/");
    assert_eq!(
        dc.api_base(Deployment::DataCenter).as_str(),
        "https://jira.example.com/jira/rest/api/2/"
    );
    assert_eq!(dc.quiet_hours.unwrap().to_string(), "22:00-06:00");
    assert_eq!(
        dc.credentials(Deployment::DataCenter).unwrap(),
        Credentials::Bearer(Secret::new("dc-pat-value"))
    );
}

#[test]
fn unknown_key_is_named_with_its_section_line_and_column() {
    let err =
        parse("[profiles.p]\nurl = \"https://x.example.com\"\n  tiemout = \"30s\"\n").unwrap_err();
    let ProfileError::UnknownKey {
        line,
        column,
        ref key,
        ref section,
        ref suggestion,
        ..
    } = err
    else {
        panic!("expected UnknownKey, got {err:?}");
    };
    assert_eq!((line, column), (3, 3));
    assert_eq!(key, "tiemout");
    assert_eq!(section, "[profiles.p]");
    assert_eq!(suggestion.as_deref(), Some("timeout"));
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/jira-cache/profiles.toml:3:3: unknown key `tiemout`"),
        "{text}"
    );
    assert!(text.contains("did you mean `timeout`"), "{text}");
}

#[test]
fn unknown_keys_in_sub_tables_and_at_the_top_level_are_named_too() {
    let err = with("[profiles.p.ttl]\nissues = \"5m\"").unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { key, section, line: 4, .. }
            if key == "issues" && section == "[profiles.p.ttl]"),
        "{err:?}"
    );
    let err = with("check.warn_ages = \"1h\"").unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { key, section, .. }
            if key == "warn_ages" && section == "[profiles.p.check]"),
        "{err:?}"
    );
    let err =
        parse("defualt = \"p\"\n[profiles.p]\nurl = \"https://x.example.com\"\n").unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownKey { key, section, line: 1, column: 1, suggestion, .. }
            if key == "defualt" && section == "the top level" && suggestion.as_deref() == Some("default")),
        "{err:?}"
    );
}

#[test]
fn inline_token_is_refused_without_echoing_its_value() {
    let err = with(&format!("colour = \"blue\"\ntoken = \"{TOKEN}\"")).unwrap_err();
    assert!(
        matches!(
            err,
            ProfileError::InlineToken {
                line: 4,
                column: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains(TOKEN), "{text}");
    assert!(
        text.contains("token_env") && text.contains("token_cmd"),
        "{text}"
    );
    assert!(!format!("{err:?}").contains(TOKEN));

    // At the top level, and with a value of the wrong type, too.
    let err = parse(&format!("token = \"{TOKEN}\"\n{}", one_profile("p"))).unwrap_err();
    assert!(
        matches!(err, ProfileError::InlineToken { line: 1, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN));
    let err = with("token = 12345678").unwrap_err();
    assert!(matches!(err, ProfileError::InlineToken { .. }), "{err:?}");
    assert!(!err.to_string().contains("12345678"));
}

#[test]
fn malformed_toml_reports_line_and_column() {
    let err = parse("[profiles.p]\nurl = \"https://x.example.com\"\nburst = = 3\n").unwrap_err();
    let ProfileError::Toml { line, column, .. } = err else {
        panic!("expected Toml, got {err:?}");
    };
    assert_eq!(line, 3);
    assert!(column >= 7, "column {column}");
    let text = err.to_string();
    assert!(text.starts_with(&format!("{FILE}:3:")), "{text}");
    assert!(text.contains("profiles.example.toml"), "{text}");
}

#[test]
fn wrong_types_report_line_and_column() {
    let err = with("burst = \"ten\"").unwrap_err();
    assert!(
        matches!(
            err,
            ProfileError::Toml {
                line: 3,
                column: 9,
                ..
            }
        ),
        "{err:?}"
    );
    let err = with("projects = \"PROJ\"").unwrap_err();
    assert!(matches!(err, ProfileError::Toml { line: 3, .. }), "{err:?}");
}

#[test]
fn unknown_profile_lists_the_known_ones() {
    let text = format!("{}{}", one_profile("prod"), one_profile("staging"));
    let err = parse_str(&text, Path::new(FILE), Some("prd"), &test_env()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownProfile { name, known, .. }
            if name == "prd" && known == &["prod", "staging"]),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("prod, staging"), "{text}");
    assert!(text.contains("--profile"), "{text}");
}

#[test]
fn the_default_key_and_a_single_profile_choose_the_profile() {
    let text = format!("default = \"b\"\n{}{}", one_profile("a"), one_profile("b"));
    assert_eq!(parse(&text).unwrap().name, "b");
    assert_eq!(parse(&one_profile("only")).unwrap().name, "only");
}

#[test]
fn several_profiles_without_default_ask_which_one() {
    let err = parse(&format!("{}{}", one_profile("a"), one_profile("b"))).unwrap_err();
    assert!(
        matches!(err, ProfileError::AmbiguousProfile { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("--profile") && text.contains("default = "),
        "{text}"
    );
}

#[test]
fn a_default_that_names_no_profile_is_an_error_even_with_a_flag() {
    let text = format!("default = \"prod\"\n{}", one_profile("production"));
    let err = parse_str(&text, Path::new(FILE), Some("production"), &test_env()).unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownProfile { name, .. } if name == "prod"),
        "{err:?}"
    );
}

#[test]
fn a_file_without_profiles_says_what_to_add() {
    let err = parse("# nothing yet\n").unwrap_err();
    assert!(matches!(err, ProfileError::NoProfiles { .. }), "{err:?}");
    assert!(err.to_string().contains("[profiles.NAME]"));
}

#[test]
fn profile_names_that_cannot_name_a_file_are_refused() {
    let err = parse("[profiles.\"../etc\"]\nurl = \"https://x.example.com\"\n").unwrap_err();
    assert!(
        matches!(&err, ProfileError::Invalid { key, location: Some(Location { line: 1, .. }), .. }
            if key == "profile name"),
        "{err:?}"
    );
}

#[test]
fn the_environment_makes_a_default_profile_without_a_file() {
    let mut machine = Machine::new();
    machine.set("JIRA_SITE_URL", "https://example.atlassian.net");
    machine.set("JIRA_EMAIL", "bot@example.com");
    machine.set("JIRA_API_TOKEN", TOKEN);
    machine.set("JIRA_DEPLOYMENT", "cloud");
    machine.set("JIRA_AUTH_TYPE", "basic");
    let p = load(&machine.opts()).unwrap();
    assert_eq!(p.name, "default");
    assert_eq!(p.source, ProfileSource::Environment);
    assert_eq!(p.url.as_str(), "https://example.atlassian.net/");
    assert_eq!(p.email.as_deref(), Some("bot@example.com"));
    assert_eq!(p.deployment, Some(Deployment::Cloud));
    assert_eq!(p.auth, Some(AuthKind::Basic));
    assert_eq!(p.token, TokenSource::Env("JIRA_API_TOKEN".into()));
    assert_eq!(p.resolve_token().unwrap().expose(), TOKEN);
    assert_eq!(p.burst, 10);
    assert_eq!(p.cache_dir, machine.dir.path().join("cache/jira-cache"));

    let (source, names) = profile_names(&machine.opts()).unwrap();
    assert_eq!(
        (source, names),
        (ProfileSource::Environment, vec!["default".to_owned()])
    );
    assert_eq!(load_all(&machine.opts()).unwrap(), vec![p]);
}

#[test]
fn the_environment_profile_is_only_called_default() {
    let mut machine = Machine::new();
    machine.set("JIRA_SITE_URL", "https://example.atlassian.net");
    let mut opts = machine.opts();
    opts.profile = Some("default".into());
    assert!(load(&opts).is_ok());
    opts.profile = Some("prod".into());
    let err = load(&opts).unwrap_err();
    assert!(
        matches!(&err, ProfileError::UnknownProfile { name, origin: ProfileSource::Environment, known }
            if name == "prod" && known == &["default"]),
        "{err:?}"
    );
    assert!(err.to_string().contains("profiles.example.toml"), "{err}");
    machine.set("JIRA_PROFILE", "staging");
    let err = load(&machine.opts()).unwrap_err();
    assert!(
        matches!(err, ProfileError::UnknownProfile { .. }),
        "{err:?}"
    );
}

#[test]
fn bad_environment_values_name_the_variable() {
    let mut machine = Machine::new();
    machine.set("JIRA_SITE_URL", "https://example.atlassian.net");
    machine.set("JIRA_DEPLOYMENT", "server");
    let err = expect_invalid(load(&machine.opts()), "JIRA_DEPLOYMENT", "datacenter");
    assert!(err.starts_with("the environment"), "{err}");
    machine.set("JIRA_DEPLOYMENT", "datacenter");
    machine.set("JIRA_AUTH_TYPE", "token");
    expect_invalid(load(&machine.opts()), "JIRA_AUTH_TYPE", "bearer");
    machine.set("JIRA_AUTH_TYPE", "bearer");
    machine.set("JIRA_SITE_URL", "http://jira.internal");
    expect_invalid(load(&machine.opts()), "JIRA_SITE_URL", "https://");
}

#[test]
fn no_file_and_no_site_url_say_where_it_looked_and_how_to_fix_it() {
    let machine = Machine::new();
    let err = load(&machine.opts()).unwrap_err();
    let ProfileError::NoProfile { searched } = &err else {
        panic!("expected NoProfile, got {err:?}");
    };
    assert_eq!(searched, &[machine.platform_file()]);
    let text = err.to_string();
    assert!(
        text.contains(&machine.platform_file().display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("JIRA_SITE_URL") && text.contains("profiles.example.toml"),
        "{text}"
    );
}

#[test]
fn the_config_flag_beats_the_variable_which_beats_the_platform_dir() {
    let mut machine = Machine::new();
    machine.write_platform(&one_profile("platform"));
    let from_var = machine.write("var/profiles.toml", &one_profile("variable"));
    let from_flag = machine.write("flag/profiles.toml", &one_profile("flag"));

    assert_eq!(load(&machine.opts()).unwrap().name, "platform");
    machine.set("JIRA_CACHE_CONFIG", &from_var.display().to_string());
    let p = load(&machine.opts()).unwrap();
    assert_eq!(
        (p.name.as_str(), &p.source),
        ("variable", &ProfileSource::File(from_var))
    );
    let mut opts = machine.opts();
    opts.config = Some(from_flag.clone());
    let p = load(&opts).unwrap();
    assert_eq!(
        (p.name.as_str(), &p.source),
        ("flag", &ProfileSource::File(from_flag))
    );
}

#[test]
fn an_explicit_config_that_does_not_exist_is_an_error_not_a_fallback() {
    let mut machine = Machine::new();
    machine.write_platform(&one_profile("platform"));
    machine.set("JIRA_SITE_URL", "https://example.atlassian.net");
    let missing = machine.dir.path().join("missing.toml");

    let mut opts = machine.opts();
    opts.config = Some(missing.clone());
    let err = load(&opts).unwrap_err();
    assert!(
        matches!(&err, ProfileError::ConfigNotFound { path, given_by: "--config" } if path == &missing),
        "{err:?}"
    );
    assert!(err.to_string().contains("missing.toml"), "{err}");

    machine.set("JIRA_CACHE_CONFIG", &missing.display().to_string());
    let err = load(&machine.opts()).unwrap_err();
    assert!(
        matches!(
            err,
            ProfileError::ConfigNotFound {
                given_by: "$JIRA_CACHE_CONFIG",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_profile_flag_beats_the_variable_which_beats_the_default_key() {
    let mut machine = Machine::new();
    machine.write_platform(&format!(
        "default = \"a\"\n{}{}{}",
        one_profile("a"),
        one_profile("b"),
        one_profile("c")
    ));
    assert_eq!(load(&machine.opts()).unwrap().name, "a");
    machine.set("JIRA_PROFILE", "b");
    assert_eq!(load(&machine.opts()).unwrap().name, "b");
    let mut opts = machine.opts();
    opts.profile = Some("c".into());
    assert_eq!(load(&opts).unwrap().name, "c");
}

#[test]
fn a_platform_file_wins_over_the_environment_variables() {
    let mut machine = Machine::new();
    machine.set("JIRA_SITE_URL", "https://env.example.com");
    machine.write_platform(&one_profile("file"));
    assert_eq!(load(&machine.opts()).unwrap().name, "file");
}

#[test]
fn load_all_and_profile_names_cover_every_profile_of_the_file() {
    let machine = Machine::new();
    let path = machine.write_platform(&format!(
        "default = \"b\"\n{}{}",
        one_profile("b"),
        one_profile("a")
    ));
    let (source, names) = profile_names(&machine.opts()).unwrap();
    assert_eq!(source, ProfileSource::File(path));
    assert_eq!(names, ["a", "b"]);
    let all = load_all(&machine.opts()).unwrap();
    assert_eq!(
        all.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
}

#[test]
fn unreadable_values_are_named_with_key_and_position() {
    let cases: &[(&str, &str, &str)] = &[
        ("timeout = \"5x\"", "timeout", "\"30s\""),
        ("timeout = \"0s\"", "timeout", "0"),
        ("max_stale = \"soon\"", "max_stale", "duration"),
        ("burst = 0", "burst", "≥ 1"),
        ("burst = -3", "burst", "≥ 1"),
        ("concurrency = 0", "concurrency", "≥ 1"),
        ("rate_limit = 0", "rate_limit", "unlimited"),
        ("rate_limit = -1.5", "rate_limit", "unlimited"),
        ("rate_limit = nan", "rate_limit", "unlimited"),
        ("rate_limit = inf", "rate_limit", "unlimited"),
        ("rate_limit = \"fast\"", "rate_limit", "unlimited"),
        ("projects = [\"PROJ\", \"ops\"]", "projects", "`ops`"),
        ("issue_fields = []", "issue_fields", "default list"),
        (
            "issue_fields = [\"summary,status\"]",
            "issue_fields",
            "one id per entry",
        ),
        ("max_size = \"5x\"", "max_size", "500MiB"),
        ("max_size = 0", "max_size", "500MiB"),
        ("quiet_hours = \"9 to 5\"", "quiet_hours", "HH:MM-HH:MM"),
        (
            "schedule = \"0 25 * * *\"",
            "schedule",
            "not a valid cron schedule",
        ),
        ("deployment = \"server\"", "deployment", "datacenter"),
        ("auth = \"token\"", "auth", "bearer"),
        ("email = \" \"", "email", "empty"),
        ("token_cmd = \"\"", "token_cmd", "empty"),
        ("cache_dir = \"\"", "cache_dir", "empty"),
        (
            "ttl.issue_recent = \"5 mins later\"",
            "ttl.issue_recent",
            "duration",
        ),
        (
            "check.warn_expired = \"50\"",
            "check.warn_expired",
            "\"50%\"",
        ),
        (
            "check.crit_expired = \"150%\"",
            "check.crit_expired",
            "percentage",
        ),
        (
            "check.warn_hit_rate = \"-5%\"",
            "check.warn_hit_rate",
            "percentage",
        ),
        ("check.crit_age = \"1h\"", "check.crit_age", "warn_age"),
        (
            "check.crit_expired = \"40%\"",
            "check.crit_expired",
            "warn_expired",
        ),
    ];
    for (line, key, needle) in cases {
        let text = expect_invalid(with(line), key, needle);
        assert!(text.starts_with(&format!("{FILE}:3:")), "{line}: {text}");
        assert!(text.contains("profile `p`"), "{text}");
    }
}

#[test]
fn schedules_with_names_and_macros_load_as_cron_takes_them() {
    for schedule in ["@daily", "30 7 * * MON-FRI", "0 6 1 JAN *"] {
        let p = with(&format!("schedule = \"{schedule}\"")).unwrap();
        assert_eq!(p.schedule, schedule);
    }
}

#[test]
fn a_profile_without_url_says_what_to_add() {
    expect_invalid(
        parse("[profiles.p]\nemail = \"a@b.c\"\n"),
        "url",
        "url = \"https://",
    );
}

#[test]
fn rate_limit_takes_integers_floats_and_unlimited() {
    assert_eq!(
        with("rate_limit = 10").unwrap().rate_limit,
        RateLimit::PerSecond(10.0)
    );
    assert_eq!(
        with("rate_limit = 0.5").unwrap().rate_limit,
        RateLimit::PerSecond(0.5)
    );
    assert_eq!(
        with("rate_limit = \"unlimited\"").unwrap().rate_limit,
        RateLimit::Unlimited
    );
}

#[test]
fn http_is_accepted_for_loopback_hosts_only_unless_allowed() {
    let url = |u: &str, extra: &str| parse(&format!("[profiles.p]\nurl = \"{u}\"\n{extra}\n"));
    for loopback in [
        "http://localhost:8080",
        "http://127.0.0.1:2990/jira",
        "http://[::1]:9000",
    ] {
        assert!(url(loopback, "").is_ok(), "{loopback}");
    }
    let text = expect_invalid(
        url("http://jira.example.com", ""),
        "url",
        "allow_insecure_http",
    );
    assert!(text.contains(&format!("{FILE}:2:7")), "{text}");
    let p = url("http://jira.example.com", "allow_insecure_http = true").unwrap();
    assert_eq!(p.url.as_str(), "http://jira.example.com/");
    expect_invalid(url("ftp://jira.example.com", ""), "url", "https://");
    expect_invalid(url("jira.example.com", ""), "url", "not a URL");
}

#[test]
fn urls_keep_their_context_path_and_end_with_a_slash() {
    let url = |u: &str| {
        parse(&format!("[profiles.p]\nurl = \"{u}\"\n"))
            .unwrap()
            .url
    };
    assert_eq!(
        url("https://host.example.com").as_str(),
        "https://host.example.com/"
    );
    assert_eq!(
        url("https://host.example.com/").as_str(),
        "https://host.example.com/"
    );
    assert_eq!(
        url("https://host.example.com/jira").as_str(),
        "https://host.example.com/jira/"
    );
    assert_eq!(
        url(" https://host.example.com/jira// ").as_str(),
        "https://host.example.com/jira/"
    );
    let p = parse("[profiles.p]\nurl = \"https://host.example.com/jira\"\n").unwrap();
    assert_eq!(
        p.api_base(Deployment::Cloud)
            .join("field")
            .unwrap()
            .as_str(),
        "https://host.example.com/jira/rest/api/3/field"
    );
    expect_invalid(
        parse("[profiles.p]\nurl = \"https://h.example.com/?a=1\"\n"),
        "url",
        "query",
    );
}

#[test]
fn urls_with_credentials_are_refused_without_showing_them() {
    let err = parse("[profiles.p]\nurl = \"https://bot:hunter2@jira.example.com\"\n").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("user name or password"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = parse("[profiles.p]\nurl = \"http://bot:hunter2@jira.example.com\"\n").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn token_cmd_wins_over_token_env() {
    let p = with("token_env = \"JIRA_API_TOKEN\"\ntoken_cmd = \"echo from-command\"").unwrap();
    assert_eq!(p.token, TokenSource::Command("echo from-command".into()));
    assert_eq!(p.resolve_token().unwrap().expose(), "from-command");
}

#[test]
fn a_failing_token_cmd_shows_neither_the_command_nor_its_output() {
    let p = with("token_cmd = \"echo printed-secret; echo 'no such entry' >&2; exit 3\"").unwrap();
    let err = p.resolve_token().unwrap_err();
    assert!(
        matches!(err, ProfileError::TokenCommandFailed { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    // Not the command either: any word of it may be a secret of its own.
    assert!(text.contains("token_cmd failed"), "{text}");
    assert!(!text.contains("printed-secret"), "{text}");
    // Nor what it printed (a password manager's complaint may hold the
    // secret).
    assert!(!text.contains("no such entry"), "{text}");
    assert!(text.contains("run it by hand"), "{text}");
    assert!(text.contains("profile `p`"), "{text}");

    let p = with("token_cmd = \"true\"").unwrap();
    let text = p.resolve_token().unwrap_err().to_string();
    assert!(text.contains("printed nothing"), "{text}");
    // A failing serve_token_cmd is named by its own key.
    let p = with("serve_token_cmd = \"true\"").unwrap();
    let text = p.resolve_serve_token().unwrap_err().to_string();
    assert!(
        text.contains("serve_token_cmd printed nothing")
            && text.ends_with("or fix serve_token_cmd"),
        "{text}"
    );
}

#[test]
fn a_missing_token_variable_is_named_with_the_fix() {
    let p = with("token_env = \"JIRA_OTHER_TOKEN\"").unwrap();
    let err = p.resolve_token().unwrap_err();
    assert!(
        matches!(&err, ProfileError::TokenMissing { variable, .. } if variable == "JIRA_OTHER_TOKEN"),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("no API token: environment variable JIRA_OTHER_TOKEN")
            && text.contains("set token_cmd in the profile"),
        "{text}"
    );
    // cache_serve's token names its own key, not the profile's token_cmd.
    let p = with("serve_token_env = \"JIRA_CACHE_SERVE_TOKEN\"").unwrap();
    let text = p.resolve_serve_token().unwrap_err().to_string();
    assert!(
        text.contains("no cache_serve token: environment variable JIRA_CACHE_SERVE_TOKEN")
            && text.contains("set serve_token_cmd in the profile"),
        "{text}"
    );

    let mut env = test_env();
    env.set("JIRA_API_TOKEN", "  ");
    let p = parse_str(&one_profile("p"), Path::new(FILE), None, &env).unwrap();
    assert!(matches!(
        p.resolve_token(),
        Err(ProfileError::TokenMissing { .. })
    ));
}

#[test]
fn a_token_pasted_into_token_env_is_refused_without_echo() {
    let pasted = "ATATT3xFfGF0abc-def_ghi=jkl";
    let text = expect_invalid(
        with(&format!("token_env = \"{pasted}\"")),
        "token_env",
        "not the token itself",
    );
    assert!(!text.contains(pasted), "{text}");
}

#[test]
fn debug_output_never_shows_the_token() {
    let p = with("email = \"bot@example.com\"").unwrap();
    let secret = p.resolve_token().unwrap();
    let credentials = p.credentials(Deployment::Cloud).unwrap();
    let opts = LoadOptions {
        config: None,
        profile: None,
        env: test_env(),
    };
    for shown in [
        format!("{p:?}"),
        format!("{p:#?}"),
        format!("{secret:?}"),
        format!("{secret}"),
        format!("{credentials:?}"),
        format!("{opts:?}"),
    ] {
        assert!(!shown.contains(TOKEN), "{shown}");
    }
    assert_eq!(secret.expose(), TOKEN);
}

#[test]
fn credentials_default_to_basic_on_cloud_and_bearer_on_data_center() {
    let p = with("email = \"bot@example.com\"").unwrap();
    assert_eq!(p.auth_kind(Deployment::Cloud), AuthKind::Basic);
    assert_eq!(p.auth_kind(Deployment::DataCenter), AuthKind::Bearer);
    assert_eq!(
        p.credentials(Deployment::Cloud).unwrap(),
        Credentials::Basic {
            email: "bot@example.com".into(),
            token: Secret::new(TOKEN)
        }
    );
    assert_eq!(
        p.credentials(Deployment::DataCenter).unwrap(),
        Credentials::Bearer(Secret::new(TOKEN))
    );
    let p = with("auth = \"bearer\"").unwrap();
    assert_eq!(p.auth_kind(Deployment::Cloud), AuthKind::Bearer);
}

#[test]
fn basic_auth_without_email_is_an_error_only_when_credentials_are_needed() {
    let p = with("").unwrap();
    assert!(p.credentials(Deployment::DataCenter).is_ok());
    let err = p.credentials(Deployment::Cloud).unwrap_err();
    let ProfileError::Invalid { key, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(key, "email");
    let text = err.to_string();
    assert!(
        text.contains("set email") && text.contains("bearer"),
        "{text}"
    );
}

#[test]
fn a_missing_email_is_found_offline_when_basic_auth_is_certain() {
    let p = with("").unwrap();
    assert!(
        p.check_offline().is_ok(),
        "deployment unknown: maybe bearer"
    );
    let p = with("deployment = \"cloud\"").unwrap();
    let Err(ProfileError::Invalid { key, .. }) = p.check_offline() else {
        panic!("expected a missing email");
    };
    assert_eq!(key, "email");
    assert!(
        with("deployment = \"datacenter\"")
            .unwrap()
            .check_offline()
            .is_ok()
    );
    assert!(with("auth = \"basic\"").unwrap().check_offline().is_err());
}

#[test]
fn cache_dir_expands_home_and_resolves_relative_paths_against_the_file() {
    let p = with("cache_dir = \"~/jira\"").unwrap();
    assert_eq!(p.cache_dir, PathBuf::from("/home/u/jira"));
    let p = with("cache_dir = \"cache\"").unwrap();
    assert_eq!(p.cache_dir, PathBuf::from("/etc/jira-cache/cache"));
    assert_eq!(p.lock_path(), PathBuf::from("/etc/jira-cache/cache/p.lock"));
}

#[test]
fn a_missing_ca_file_is_named() {
    let text = expect_invalid(
        with("ca_file = \"/nonexistent/corp-ca.pem\""),
        "ca_file",
        "/nonexistent/corp-ca.pem",
    );
    assert!(text.contains("remove ca_file"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[profiles.p]\nurl = \"https://x.example.com\"\nca_file = \"{}\"\n",
        dir.path().display()
    );
    expect_invalid(parse(&text), "ca_file", "not a regular file");
}

#[test]
fn ttls_are_chosen_by_category_and_issue_recency() {
    let ttl = Ttls::default();
    assert_eq!(
        ttl.ttl_for(Category::Project, true),
        Duration::from_secs(86_400)
    );
    assert_eq!(ttl.ttl_for(Category::Issue, true), Duration::from_secs(300));
    assert_eq!(
        ttl.ttl_for(Category::Issue, false),
        Duration::from_secs(3_600)
    );
}

#[test]
fn quiet_hours_of_a_profile_answer_for_a_local_time() {
    let p = with("quiet_hours = \"22:00-06:00\"").unwrap();
    let hours = p.quiet_hours.unwrap();
    assert!(hours.contains(NaiveTime::from_hms_opt(23, 30, 0).unwrap()));
    assert!(!hours.contains(NaiveTime::from_hms_opt(12, 0, 0).unwrap()));
}

#[test]
fn the_serve_keys_parse_and_the_serve_token_comes_from_its_variable_or_command() {
    let p = with("").unwrap();
    assert_eq!(p.serve_listen, None);
    assert_eq!(p.resolve_serve_token().unwrap(), None);
    let p =
        with("serve_listen = \"127.0.0.1:9000\"\nserve_token_env = \"JIRA_API_TOKEN\"").unwrap();
    assert_eq!(p.serve_listen, Some("127.0.0.1:9000".parse().unwrap()));
    assert_eq!(
        p.resolve_serve_token()
            .unwrap()
            .map(|s| s.expose().to_string()),
        Some(TOKEN.to_string())
    );
    let p = with("serve_token_env = \"NOPE\"\nserve_token_cmd = \"echo from-command\"").unwrap();
    assert_eq!(
        p.resolve_serve_token()
            .unwrap()
            .map(|s| s.expose().to_string()),
        Some("from-command".to_string())
    );
    expect_invalid(
        with("serve_listen = \"localhost\""),
        "serve_listen",
        "127.0.0.1:8765",
    );
    expect_invalid(with("serve_token_cmd = \" \""), "serve_token_cmd", "empty");
}

#[test]
fn cache_url_selects_postgres_and_its_password_never_comes_from_the_file() {
    use crate::cache::CacheLocation;
    let p = with("").unwrap();
    assert!(matches!(
        p.cache_location().unwrap(),
        CacheLocation::File(_)
    ));

    let p = with(
        "cache_url = \"postgres://jira@db.internal:5433/jc\"\ncache_password_env = \"JIRA_API_TOKEN\"\ncache_schema = \"team_cache\"",
    )
    .unwrap();
    let CacheLocation::Postgres(target) = p.cache_location().unwrap() else {
        panic!("expected PostgreSQL");
    };
    assert_eq!(
        target.display(),
        "postgres://jira@db.internal:5433/jc (schema team_cache)"
    );
    assert_eq!(target.scope(), "p https://example.atlassian.net/");
    assert_eq!(p.cache_display(), target.display());

    let text = expect_invalid(
        with("cache_url = \"postgres://jira:hunter2@db/jc\""),
        "cache_url",
        "cache_password_env",
    );
    assert!(!text.contains("hunter2"), "{text}");
    expect_invalid(
        with("cache_url = \"mysql://db/jc\""),
        "cache_url",
        "PostgreSQL URL",
    );
    expect_invalid(
        with("cache_url = \"postgres://jira@db/jc\"\ncache_schema = \"a-b\""),
        "cache_schema",
        "plain name",
    );
    expect_invalid(
        with("cache_url = \"postgres://jira@db/jc\"\ncache_password_cmd = \" \""),
        "cache_password_cmd",
        "empty",
    );
    // A variable that is not set is named, with the next step.
    let p = with("cache_url = \"postgres://jira@db/jc\"\ncache_password_env = \"NOT_SET_HERE\"")
        .unwrap();
    let err = p.cache_location().unwrap_err().to_string();
    assert!(
        err.contains("NOT_SET_HERE") && err.contains("export"),
        "{err}"
    );
}

#[test]
fn jira_cache_url_overrides_the_file_and_pgpassword_is_a_password_source() {
    use crate::cache::CacheLocation;
    let mut env = test_env();
    env.set("JIRA_CACHE_URL", "postgres://ci@127.0.0.1:6543/shared");
    env.set("PGPASSWORD", "from-pgpassword");
    let p = parse_str(
        "[profiles.p]\nurl = \"https://example.atlassian.net\"\ncache_url = \"postgres://jira@db/jc\"\n",
        Path::new(FILE),
        None,
        &env,
    )
    .unwrap();
    let CacheLocation::Postgres(target) = p.cache_location().unwrap() else {
        panic!("expected PostgreSQL");
    };
    assert_eq!(
        target.display(),
        "postgres://ci@127.0.0.1:6543/shared (schema jira_cache)"
    );
    assert!(!format!("{target:?}").contains("from-pgpassword"));
}

#[test]
fn pgpass_matches_host_port_database_and_user_with_wildcards_and_escapes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".pgpass");
    std::fs::write(
        &file,
        "# comment\nother:5432:jc:jira:wrong\ndb.internal:*:jc:jira:pa\\:ss\\\\word\n*:*:*:*:fallback\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let target = |url: &str| crate::cache::PgTarget::new(url, None, "jira_cache", "s").unwrap();
    assert_eq!(
        crate::cache::pgpass_lookup(&file, &target("postgres://jira@db.internal:5433/jc"))
            .as_deref(),
        Some("pa:ss\\word")
    );
    assert_eq!(
        crate::cache::pgpass_lookup(&file, &target("postgres://x@elsewhere/y")).as_deref(),
        Some("fallback")
    );
    // Readable by others: ignored, as libpq does.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        crate::cache::pgpass_lookup(&file, &target("postgres://jira@db.internal/jc")),
        None
    );
}
