//! A throwaway PostgreSQL server for the tests, on a port the OS picked.
//!
//! It is the distribution's own server (`.ci/run` installs it), started from
//! its binaries in a fresh data directory under the system temp dir. As root
//! (CI) it runs as the packaged `postgres` user, since `initdb` and
//! `postgres` refuse root. The server dies with the test process: it is
//! started with a parent-death signal, from a thread that lives as long as
//! the process.
//!
//! Without the binaries the PostgreSQL tests skip with a message that says
//! how to run them, except under CI (`CI=true`), where they fail loudly.
//! `JIRA_CACHE_PG_BIN` names the directory of `initdb` and `postgres` when
//! they are somewhere else.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The superuser's password in every test cluster.
pub const PASSWORD: &str = "pg-test-password-7731";

/// Where the server binaries are, or `None` (then the caller skips, or
/// under CI fails).
fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("JIRA_CACHE_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file() && p.join("postgres").is_file())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop()
}

/// The binaries, or `None` with the skip message printed; panics under CI.
pub fn available() -> Option<PathBuf> {
    match bin_dir() {
        Some(dir) => Some(dir),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin and CI=true: \
             .ci/run must install the `postgresql` package (or set JIRA_CACHE_PG_BIN)"
        ),
        None => {
            eprintln!(
                "skipping: no PostgreSQL server binaries (install Debian's `postgresql` package, \
                 or set JIRA_CACHE_PG_BIN to the directory of initdb and postgres)"
            );
            None
        }
    }
}

/// The uid and gid to run the server as: ours, or as root the `postgres`
/// user's.
fn server_user() -> Option<(libc::uid_t, libc::gid_t)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns NULL or a pointer to a static record, read
    // at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root and there is no `postgres` user: install the `postgresql` package"
    );
    // SAFETY: `pw` is not NULL.
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

/// A command that runs as the server's user, and dies with its parent thread.
fn server_command(program: &Path, user: Option<(libc::uid_t, libc::gid_t)>) -> Command {
    let mut cmd = Command::new(program);
    cmd.stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After the uid change, which would clear it.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// One PostgreSQL server.
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    user: Option<(libc::uid_t, libc::gid_t)>,
    child: Option<Child>,
}

impl PgServer {
    /// A new cluster, started; `None` (skipped) without the binaries.
    pub fn start() -> Option<PgServer> {
        Self::start_with(false).map(|(server, _)| server)
    }

    /// A new cluster that takes TCP connections over TLS only (`hostssl`),
    /// with a certificate for 127.0.0.1 and localhost signed by a test CA;
    /// answers the CA's PEM file too.
    pub fn start_tls() -> Option<(PgServer, PathBuf)> {
        Self::start_with(true).map(|(server, ca)| (server, ca.unwrap()))
    }

    fn start_with(tls: bool) -> Option<(PgServer, Option<PathBuf>)> {
        let bin = available()?;
        remove_stale_clusters();
        let user = server_user();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "jira-cache-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let out = server_command(&bin.join("initdb"), user)
            .args(["-D"])
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--no-sync",
                "--no-locale",
                "-E",
                "UTF8",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&dir)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ca = tls.then(|| enable_tls(&dir, &data, user));
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = PgServer {
            bin,
            dir,
            port,
            user,
            child: None,
        };
        server.run();
        Some((server, ca))
    }

    /// Starts the server process on the cluster and waits until it answers.
    fn run(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        if let Some((uid, gid)) = self.user {
            std::os::unix::fs::chown(self.dir.join("server.log"), Some(uid), Some(gid)).unwrap();
        }
        let child = server_command(&self.bin.join("postgres"), self.user)
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(&self.dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        // Wait for the server to accept a login (a failure guard, not a
        // timing assumption).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (port, socket) = (self.port, self.dir.clone());
            let answered = off_runtime(move || {
                postgres::Config::new()
                    .host_path(&socket)
                    .port(port)
                    .user("postgres")
                    .password(PASSWORD)
                    .dbname("postgres")
                    .connect(postgres::NoTls)
                    .and_then(|mut c| c.simple_query("SELECT 1"))
                    .is_ok()
            });
            if answered {
                return;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "postgres exited ({status}): {}",
                    std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within 60 s: {}",
                std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown: sessions end, committed work stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/<db>` (no password: it comes
    /// from `PGPASSWORD` or a profile key, as for users).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A superuser client, for checks and set-up (not from an async test:
    /// the blocking client must not run on a runtime's thread).
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .password(PASSWORD)
            .dbname(db)
            .connect(postgres::NoTls)
            .expect("connect to the test server")
    }

    /// A fresh database for one test.
    pub fn create_database(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
        let sql = format!("CREATE DATABASE {name}");
        off_runtime(|| self.client("postgres").batch_execute(&sql).unwrap());
        name
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGQUIT) };
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The test binary's shared server, started once from a thread that lives
/// as long as the process (the parent-death signal is per thread).
pub fn shared() -> Option<&'static PgServer> {
    static SERVER: OnceLock<Option<&'static PgServer>> = OnceLock::new();
    *SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let server = PgServer::start().map(|s| &*Box::leak(Box::new(s)));
            tx.send(server).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("the server thread answers")
    })
}

/// Removes the data directories of test clusters whose process is gone.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("jira-cache-pg-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `f` on a thread of its own: the blocking `postgres` client starts a
/// runtime of its own, which an async test's thread must not.
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    std::thread::scope(|s| s.spawn(f).join().expect("the helper thread ends"))
}

/// Gives the cluster in `data` a certificate signed by a fresh test CA,
/// turns TLS on, and makes TCP connections TLS-only (`hostssl`); answers
/// the CA's PEM file (in `dir`).
fn enable_tls(dir: &Path, data: &Path, user: Option<(libc::uid_t, libc::gid_t)>) -> PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jira-cache test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let (crt, pem_key) = (data.join("server.crt"), data.join("server.key"));
    std::fs::write(&crt, leaf.pem()).unwrap();
    std::fs::write(&pem_key, key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&pem_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((uid, gid)) = user {
        for f in [&crt, &pem_key] {
            std::os::unix::fs::chown(f, Some(uid), Some(gid)).unwrap();
        }
    }
    let conf = data.join("postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(&conf, text).unwrap();
    let hba = data.join("pg_hba.conf");
    let text: String = std::fs::read_to_string(&hba)
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix("host ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect();
    std::fs::write(&hba, text).unwrap();
    ca
}
