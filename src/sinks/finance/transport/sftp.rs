//! Delivery over SFTP (KMD Opus), with `russh` + `russh-sftp` (pure Rust, aws-lc-rs crypto).
//!
//! Each operation opens its own connection (a nightly run makes a handful), verifies the
//! server's host key against the configured `known_hosts` file, authenticates with the
//! configured private key and closes the connection again.

use super::{
    ARCHIVE, Delivery, Reply, SftpConfig, TransportError, check_name, is_reply_name, part_name,
};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, check_known_hosts_path};
use russh_sftp::client::SftpSession;
use russh_sftp::protocol::StatusCode;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Writes voucher files to, and reads replies from, an SFTP server.
#[derive(Debug, Clone)]
pub struct SftpTransport {
    config: SftpConfig,
}

impl SftpTransport {
    /// Checks the configuration: a host key check must be configured (a `known_hosts_file`,
    /// or explicitly `accept_unknown_host_key` in tests).
    pub fn new(config: SftpConfig) -> Result<Self, TransportError> {
        if config.known_hosts_file.is_none() && !config.accept_unknown_host_key {
            return Err(TransportError::Config(
                "sftp: known_hosts_file is required (insecure_accept_unknown_host_key is for tests only)"
                    .into(),
            ));
        }
        if config.host.is_empty() || config.user.is_empty() {
            return Err(TransportError::Config(
                "sftp: host and user are required".into(),
            ));
        }
        Ok(Self { config })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.config.timeout_secs.max(1))
    }

    /// Writes `.<name>.part` in `remote_dir`, closes it, then renames it to `name`. A file of
    /// that name already there (not yet collected) is never replaced: SFTP v3's rename
    /// refuses an existing target, and the name is looked up first.
    pub async fn deliver(&self, name: &str, content: &[u8]) -> Result<Delivery, TransportError> {
        check_name(name)?;
        let dir = &self.config.remote_dir;
        let tmp = join(dir, &part_name(name));
        let target = join(dir, name);
        self.with_session(|sftp| async move {
            let result = async {
                let mut file = sftp.create(tmp.clone()).await.map_err(sftp_err)?;
                file.write_all(content).await.map_err(io_err)?;
                file.flush().await.map_err(io_err)?;
                file.sync_all().await.map_err(sftp_err)?;
                file.close().await.map_err(io_err)?;
                if sftp.metadata(target.clone()).await.is_ok() {
                    return Err(TransportError::Exists(name.to_owned()));
                }
                match sftp.rename(tmp.clone(), target.clone()).await {
                    Ok(()) => Ok(()),
                    // Appeared meanwhile: SFTP v3 refuses to rename over it.
                    Err(_) if sftp.metadata(target.clone()).await.is_ok() => {
                        Err(TransportError::Exists(name.to_owned()))
                    }
                    Err(e) => Err(sftp_err(e)),
                }
            }
            .await;
            if result.is_err() {
                let _ = sftp.remove_file(tmp.clone()).await;
            }
            result
        })
        .await?;
        Ok(Delivery::Delivered)
    }

    /// Reads every reply file (`*.xml`, not dot files) in `reply_dir`, sorted by name.
    pub async fn fetch_replies(&self) -> Result<Vec<Reply>, TransportError> {
        let dir = self.config.reply_dir.clone();
        self.with_session(|sftp| async move {
            let mut names: Vec<String> = sftp
                .read_dir(dir.clone())
                .await
                .map_err(sftp_err)?
                .filter(|e| e.file_type().is_file())
                .map(|e| e.file_name())
                .filter(|n| is_reply_name(n))
                .collect();
            names.sort();
            let mut replies = Vec::with_capacity(names.len());
            for name in names {
                let content = sftp.read(join(&dir, &name)).await.map_err(sftp_err)?;
                replies.push(Reply { name, content });
            }
            Ok(replies)
        })
        .await
    }

    /// Renames `reply_dir/name` to `reply_dir/archive/name` (creating `archive/` if needed).
    pub async fn archive_reply(&self, name: &str) -> Result<(), TransportError> {
        check_name(name)?;
        let dir = self.config.reply_dir.clone();
        let name = name.to_owned();
        self.with_session(|sftp| async move {
            let archive = join(&dir, ARCHIVE);
            if !sftp.try_exists(archive.clone()).await.map_err(sftp_err)? {
                sftp.create_dir(archive.clone()).await.map_err(sftp_err)?;
            }
            let to = join(&archive, &name);
            match sftp.remove_file(to.clone()).await {
                Ok(()) => {}
                Err(russh_sftp::client::error::Error::Status(s))
                    if s.status_code == StatusCode::NoSuchFile => {}
                Err(e) => return Err(sftp_err(e)),
            }
            sftp.rename(join(&dir, &name), to).await.map_err(sftp_err)
        })
        .await
    }

    /// Connects, runs `op` on an SFTP session and disconnects, all within the timeout.
    async fn with_session<T, F, Fut>(&self, op: F) -> Result<T, TransportError>
    where
        F: FnOnce(Arc<SftpSession>) -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let timeout = self.timeout();
        let work = async {
            let (handle, sftp) = self.connect().await?;
            let sftp = Arc::new(sftp);
            let result = op(sftp.clone()).await;
            let _ = sftp.close().await;
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
            result
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }

    async fn connect(
        &self,
    ) -> Result<(russh::client::Handle<HostKeyCheck>, SftpSession), TransportError> {
        let c = &self.config;
        let key_path = c.private_key_file.clone();
        let key =
            tokio::task::spawn_blocking(move || russh::keys::load_secret_key(&key_path, None))
                .await
                .map_err(|e| TransportError::Config(format!("loading the private key: {e}")))?
                .map_err(|e| {
                    TransportError::Config(format!(
                        "private key {}: {e}",
                        c.private_key_file.display()
                    ))
                })?;
        let refusal = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            host: c.host.clone(),
            port: c.port,
            known_hosts: c.known_hosts_file.clone(),
            accept_unknown: c.accept_unknown_host_key,
            refusal: refusal.clone(),
        };
        let ssh_config = Arc::new(russh::client::Config {
            inactivity_timeout: Some(self.timeout()),
            ..Default::default()
        });
        let connected =
            russh::client::connect(ssh_config, (c.host.as_str(), c.port), handler).await;
        let mut handle = match connected {
            Ok(h) => h,
            Err(e) => {
                if let Some(why) = refusal.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return Err(TransportError::HostKey(why));
                }
                return Err(TransportError::Sftp(format!(
                    "connecting to {}:{}: {e}",
                    c.host, c.port
                )));
            }
        };
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(|e| TransportError::Sftp(e.to_string()))?
            .flatten();
        let auth = handle
            .authenticate_publickey(
                c.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash),
            )
            .await
            .map_err(|e| TransportError::Sftp(format!("authenticating: {e}")))?;
        if !auth.success() {
            return Err(TransportError::AuthFailed(c.user.clone()));
        }
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| TransportError::Sftp(format!("opening a channel: {e}")))?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| TransportError::Sftp(format!("starting sftp: {e}")))?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(sftp_err)?;
        sftp.set_timeout(c.timeout_secs.max(1));
        Ok((handle, sftp))
    }
}

/// Checks the server's host key against `known_hosts`; the reason for a refusal is kept for
/// the error message.
struct HostKeyCheck {
    host: String,
    port: u16,
    known_hosts: Option<PathBuf>,
    accept_unknown: bool,
    refusal: Arc<Mutex<Option<String>>>,
}

impl HostKeyCheck {
    fn refuse(&self, why: String) -> Result<bool, russh::Error> {
        tracing::error!(host = %self.host, port = self.port, "{why}");
        *self.refusal.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        Ok(false)
    }
}

impl russh::client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_public_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(_) => {
                return self.refuse("the server offered a certificate; only plain host keys listed in known_hosts are accepted".into());
            }
        };
        let Some(path) = &self.known_hosts else {
            if self.accept_unknown {
                tracing::warn!(host = %self.host, "INSECURE: accepting the SFTP host key unchecked (insecure_accept_unknown_host_key): anyone on the network path can pose as the finance system");
                return Ok(true);
            }
            return self.refuse("no known_hosts_file configured".into());
        };
        if !path.is_file() {
            return self.refuse(format!("known_hosts file {} not found", path.display()));
        }
        match check_known_hosts_path(&self.host, self.port, key, path) {
            Ok(true) => Ok(true),
            Ok(false) => self.refuse(format!(
                "no {} key for {} in {}",
                key.algorithm(),
                host_port(&self.host, self.port),
                path.display()
            )),
            Err(russh::keys::Error::KeyChanged { line }) => self.refuse(format!(
                "the host key of {} differs from the one in {} line {line} (possible man in the middle)",
                host_port(&self.host, self.port),
                path.display()
            )),
            Err(e) => self.refuse(format!("reading {}: {e}", path.display())),
        }
    }
}

fn host_port(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn sftp_err(e: russh_sftp::client::error::Error) -> TransportError {
    TransportError::Sftp(e.to_string())
}

fn io_err(e: std::io::Error) -> TransportError {
    TransportError::Sftp(format!("I/O: {e}"))
}
