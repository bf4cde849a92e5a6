//! A real OpenSSH server on 127.0.0.1 for tests, running as the current user, with generated
//! host and client keys in a temporary folder. Stopped (killed) on drop.
//!
//! Needs `openssh-server` (`/usr/sbin/sshd`) and `ssh-keygen` (`openssh-client`).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct Sshd {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The user to log in as (the current user).
    pub user: String,
    /// The client's private key (authorized).
    pub client_key: PathBuf,
    /// A `known_hosts` file with the server's host key for `[127.0.0.1]:port`.
    pub known_hosts: PathBuf,
    /// A scratch folder for the test (remote folders can live under it).
    pub root: PathBuf,
    dir: tempfile::TempDir,
    log: PathBuf,
    child: Option<Child>,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen not found: install openssh-client");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free port")
        .port()
}

fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("running id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Sshd {
    /// Starts sshd and waits until it accepts connections. Panics (failing the test) if sshd
    /// is not installed or does not come up.
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} not found: install openssh-server (apt-get install -y openssh-server) to run the SFTP tests"
        );
        // The privilege separation folder sshd insists on.
        if !Path::new("/run/sshd").exists() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path().to_path_buf();
        let host_key = d.join("host_ed25519");
        let client_key = d.join("client_ed25519");
        keygen(&host_key);
        keygen(&client_key);
        let authorized = d.join("authorized_keys");
        std::fs::copy(d.join("client_ed25519.pub"), &authorized).expect("authorized_keys");
        let root = d.join("root");
        std::fs::create_dir_all(&root).expect("root folder");
        let port = free_port();
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\n\
                 ListenAddress 127.0.0.1\n\
                 HostKey {host_key}\n\
                 PidFile {pid}\n\
                 AuthorizedKeysFile {authorized}\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PermitRootLogin prohibit-password\n\
                 AllowTcpForwarding no\n\
                 X11Forwarding no\n\
                 PrintMotd no\n\
                 LogLevel VERBOSE\n\
                 Subsystem sftp internal-sftp\n",
                host_key = host_key.display(),
                pid = d.join("sshd.pid").display(),
                authorized = authorized.display(),
            ),
        )
        .expect("sshd_config");
        let log = d.join("sshd.log");
        let log_file = std::fs::File::create(&log).expect("sshd log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("log"))
            .stderr(log_file)
            .spawn()
            .expect("starting sshd");
        let host_pub = std::fs::read_to_string(d.join("host_ed25519.pub")).expect("host key");
        let mut parts = host_pub.split_whitespace();
        let (alg, key) = (parts.next().unwrap(), parts.next().unwrap());
        let known_hosts = d.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {alg} {key}\n"))
            .expect("known_hosts");
        let mut sshd = Sshd {
            port,
            user: current_user(),
            client_key,
            known_hosts,
            root,
            dir,
            log,
            child: Some(child),
        };
        sshd.wait_ready();
        sshd
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("sshd exited ({status}) during start:\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "sshd did not accept connections within 10 s:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// sshd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A `known_hosts` file naming this server with a different (freshly generated) key.
    pub fn wrong_known_hosts(&self) -> PathBuf {
        let other = self.dir.path().join("other_ed25519");
        if !other.exists() {
            keygen(&other);
        }
        let public = std::fs::read_to_string(self.dir.path().join("other_ed25519.pub")).unwrap();
        let mut parts = public.split_whitespace();
        let (alg, key) = (parts.next().unwrap(), parts.next().unwrap());
        let path = self.dir.path().join("known_hosts_wrong");
        std::fs::write(&path, format!("[127.0.0.1]:{} {alg} {key}\n", self.port)).unwrap();
        path
    }

    /// Stops sshd (kills it and waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
