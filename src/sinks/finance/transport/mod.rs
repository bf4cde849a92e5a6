//! Delivery of voucher files to the finance system and collection of its replies: a local (or
//! mounted) folder, SFTP (KMD Opus), or HTTP.
//!
//! Every file is written under a temporary name (`.` + name + `.part`) and then renamed, so a
//! reader polling the folder never sees half a file. Nothing here retries a delivery: the outbox
//! re-sends the same voucher number (and idempotency key) on the next run, and the finance
//! system's duplicate check makes a second copy harmless.

mod folder;
mod http;
mod sftp;

use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

pub use folder::FolderTransport;
pub use http::HttpTransport;
pub use sftp::SftpTransport;

/// Where vouchers go and where replies come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TransportConfig {
    /// A local or mounted folder the finance system reads; it writes its replies to `reply_dir`.
    Folder {
        /// Where voucher files are written.
        dir: PathBuf,
        /// Where the finance system puts its reply files (`*.xml`); processed ones are moved
        /// into `reply_dir/archive/`.
        reply_dir: PathBuf,
    },
    /// An SFTP server (KMD Opus).
    Sftp(SftpConfig),
    /// An HTTP endpoint that takes the vouchers as JSON and answers synchronously.
    Http(HttpConfig),
}

fn default_ssh_port() -> u16 {
    22
}

fn default_timeout_secs() -> u64 {
    60
}

/// SFTP delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// Host name or address.
    pub host: String,
    /// Port (default 22).
    #[serde(default = "default_ssh_port")]
    pub port: u16,
    /// User name.
    pub user: String,
    /// The client's private key (OpenSSH format, unencrypted).
    pub private_key_file: PathBuf,
    /// An OpenSSH `known_hosts` file holding the server's host key (`host` or `[host]:port`).
    /// Required unless `accept_unknown_host_key` is set.
    #[serde(default)]
    pub known_hosts_file: Option<PathBuf>,
    /// Accept any host key when no `known_hosts_file` is given. For tests only: it allows a
    /// man in the middle, so the configuration must spell it
    /// `insecure_accept_unknown_host_key`, and every connection warns.
    #[serde(default, rename = "insecure_accept_unknown_host_key")]
    pub accept_unknown_host_key: bool,
    /// The remote folder voucher files are written to.
    pub remote_dir: String,
    /// The remote folder the finance system writes its replies to.
    pub reply_dir: String,
    /// Limit for one whole operation (connect, authenticate, transfer), in seconds (default 60).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// HTTP delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL the vouchers are POSTed to.
    pub url: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default)]
    pub bearer_token: Option<SecretString>,
    /// Request timeout in seconds (default 60).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

/// The outcome of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The file is in place; the answer comes later as a reply file.
    Delivered,
    /// The finance system answered at once (HTTP 200/201, or 409 for a key it already had):
    /// the body, a `FinancePostingResponse` XML or a JSON reply.
    Answered(Vec<u8>),
}

/// A reply file from the finance system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The file name (no folder).
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
}

/// A failed transport operation.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The configuration cannot work (missing host key file, bad URL, unreadable key, ...).
    #[error("finance transport configuration: {0}")]
    Config(String),
    /// A file name with a folder part, a leading dot or nothing in it.
    #[error("invalid file name `{0}`")]
    InvalidName(String),
    /// A file of that name is already there (not yet collected): it is never replaced.
    #[error("a file named `{0}` is already there; it is never replaced")]
    Exists(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server's host key is not the one in `known_hosts` (or is not there at all).
    #[error("SFTP host key refused: {0}")]
    HostKey(String),
    /// The SSH server refused our key.
    #[error("SFTP authentication failed for user `{0}`")]
    AuthFailed(String),
    /// Connecting or talking SSH/SFTP failed.
    #[error("SFTP: {0}")]
    Sftp(String),
    /// The operation took longer than the configured timeout.
    #[error("finance transport timed out after {0:?}")]
    Timeout(Duration),
    /// Connecting to the HTTP endpoint or reading its answer failed.
    #[error("HTTP: {0}")]
    Http(String),
    /// The HTTP endpoint answered with an unexpected status.
    #[error("HTTP status {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the answer body.
        body: String,
    },
}

impl TransportError {
    /// Whether trying again later (next run) may help. Configuration, host key, authentication
    /// and 4xx answers need a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Config(_) | Self::InvalidName(_) | Self::HostKey(_) | Self::AuthFailed(_) => {
                false
            }
            Self::Exists(_) => true,
            Self::Io { .. } | Self::Sftp(_) | Self::Timeout(_) | Self::Http(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 408 || *status == 429,
        }
    }

    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// A transport built from a [`TransportConfig`].
#[derive(Debug)]
pub enum Transport {
    /// A folder.
    Folder(FolderTransport),
    /// SFTP.
    Sftp(SftpTransport),
    /// HTTP.
    Http(HttpTransport),
}

impl Transport {
    /// Checks the configuration and builds the transport (no connection is made yet).
    pub fn new(config: &TransportConfig) -> Result<Self, TransportError> {
        Ok(match config {
            TransportConfig::Folder { dir, reply_dir } => {
                Self::Folder(FolderTransport::new(dir.clone(), reply_dir.clone()))
            }
            TransportConfig::Sftp(c) => Self::Sftp(SftpTransport::new(c.clone())?),
            TransportConfig::Http(c) => Self::Http(HttpTransport::new(c)?),
        })
    }

    /// Delivers one file. Folder/SFTP: written as `.<name>.part`, then renamed to `name`
    /// ([`Delivery::Delivered`]), never over an existing file ([`TransportError::Exists`]). HTTP: POSTed as JSON with `Idempotency-Key: <key>`
    /// ([`Delivery::Answered`]). Never retried here.
    pub async fn deliver(
        &self,
        file_name: &str,
        content: &[u8],
        idempotency_key: &str,
    ) -> Result<Delivery, TransportError> {
        self.deliver_as(file_name, content, idempotency_key, "application/json")
            .await
    }

    /// [`Transport::deliver`] with the HTTP body's content type (files are files).
    pub async fn deliver_as(
        &self,
        file_name: &str,
        content: &[u8],
        idempotency_key: &str,
        content_type: &str,
    ) -> Result<Delivery, TransportError> {
        match self {
            Self::Folder(t) => t.deliver(file_name, content).await,
            Self::Sftp(t) => t.deliver(file_name, content).await,
            Self::Http(t) => t.deliver(content, idempotency_key, content_type).await,
        }
    }

    /// Every reply file (`*.xml`, not starting with `.`) in the reply folder, sorted by name.
    /// HTTP has none: its answers come with the delivery.
    pub async fn fetch_replies(&self) -> Result<Vec<Reply>, TransportError> {
        match self {
            Self::Folder(t) => t.fetch_replies().await,
            Self::Sftp(t) => t.fetch_replies().await,
            Self::Http(_) => Ok(Vec::new()),
        }
    }

    /// Moves a processed reply into `reply_dir/archive/` (replacing one of the same name).
    /// HTTP: nothing to do.
    pub async fn archive_reply(&self, name: &str) -> Result<(), TransportError> {
        match self {
            Self::Folder(t) => t.archive_reply(name).await,
            Self::Sftp(t) => t.archive_reply(name).await,
            Self::Http(_) => Ok(()),
        }
    }
}

/// A plain file name: not empty, no folder part, no leading dot.
fn check_name(name: &str) -> Result<(), TransportError> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.len() > 255
    {
        return Err(TransportError::InvalidName(name.to_owned()));
    }
    Ok(())
}

/// The temporary name a file is written under before the rename.
fn part_name(name: &str) -> String {
    format!(".{name}.part")
}

/// Whether a directory entry is a reply file.
fn is_reply_name(name: &str) -> bool {
    !name.starts_with('.') && name.len() > 4 && name.to_ascii_lowercase().ends_with(".xml")
}

/// The name of the folder processed replies are moved into.
const ARCHIVE: &str = "archive";

#[cfg(test)]
mod tests {
    use super::*;

    const SFTP: &str = "kind = \"sftp\"\nhost = \"h\"\nuser = \"u\"\nprivate_key_file = \"k\"\n\
                        remote_dir = \"in\"\nreply_dir = \"out\"\n";

    #[test]
    fn unchecked_host_keys_need_the_insecure_spelling() {
        let plain: Result<TransportConfig, _> =
            toml::from_str(&format!("{SFTP}accept_unknown_host_key = true\n"));
        let e = plain.unwrap_err().to_string();
        assert!(e.contains("accept_unknown_host_key"), "{e}");
        let insecure: TransportConfig =
            toml::from_str(&format!("{SFTP}insecure_accept_unknown_host_key = true\n")).unwrap();
        assert!(matches!(insecure, TransportConfig::Sftp(c) if c.accept_unknown_host_key));
        let checked: TransportConfig = toml::from_str(SFTP).unwrap();
        assert!(matches!(checked, TransportConfig::Sftp(c) if !c.accept_unknown_host_key));
    }
}
