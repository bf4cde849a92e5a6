//! Delivery into a local or mounted folder.

use super::{ARCHIVE, Delivery, Reply, TransportError, check_name, is_reply_name, part_name};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes voucher files into a folder and reads replies from another.
#[derive(Debug, Clone)]
pub struct FolderTransport {
    dir: PathBuf,
    reply_dir: PathBuf,
}

impl FolderTransport {
    /// A transport for `dir` (voucher files) and `reply_dir` (reply files).
    pub fn new(dir: PathBuf, reply_dir: PathBuf) -> Self {
        Self { dir, reply_dir }
    }

    /// Writes `.<name>.part`, syncs it, renames it to `name` and syncs the folder.
    pub async fn deliver(&self, name: &str, content: &[u8]) -> Result<Delivery, TransportError> {
        check_name(name)?;
        let dir = self.dir.clone();
        let name = name.to_owned();
        let content = content.to_vec();
        blocking(move || write_atomically(&dir, &name, &content)).await?;
        Ok(Delivery::Delivered)
    }

    /// Reads every reply file, sorted by name. A missing reply folder holds no replies.
    pub async fn fetch_replies(&self) -> Result<Vec<Reply>, TransportError> {
        let dir = self.reply_dir.clone();
        blocking(move || {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(TransportError::io(format!("listing {}", dir.display()), e)),
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry
                    .map_err(|e| TransportError::io(format!("listing {}", dir.display()), e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
                if is_file && is_reply_name(&name) {
                    names.push(name);
                }
            }
            names.sort();
            let mut replies = Vec::with_capacity(names.len());
            for name in names {
                let path = dir.join(&name);
                let content = std::fs::read(&path)
                    .map_err(|e| TransportError::io(format!("reading {}", path.display()), e))?;
                replies.push(Reply { name, content });
            }
            Ok(replies)
        })
        .await
    }

    /// Moves `reply_dir/name` into `reply_dir/archive/name`.
    pub async fn archive_reply(&self, name: &str) -> Result<(), TransportError> {
        check_name(name)?;
        let dir = self.reply_dir.clone();
        let name = name.to_owned();
        blocking(move || {
            let archive = dir.join(ARCHIVE);
            std::fs::create_dir_all(&archive)
                .map_err(|e| TransportError::io(format!("creating {}", archive.display()), e))?;
            let from = dir.join(&name);
            let to = archive.join(&name);
            std::fs::rename(&from, &to).map_err(|e| {
                TransportError::io(format!("moving {} to {}", from.display(), to.display()), e)
            })
        })
        .await
    }
}

fn write_atomically(dir: &Path, name: &str, content: &[u8]) -> Result<(), TransportError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| TransportError::io(format!("creating {}", dir.display()), e))?;
    let tmp = dir.join(part_name(name));
    let target = dir.join(name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content)?;
        f.sync_all()?;
        drop(f);
        // Never replace a file the finance system has not collected yet: a hard link fails
        // when the name exists (atomically); where the file system has no hard links, look
        // first.
        match std::fs::hard_link(&tmp, &target) {
            Ok(()) => std::fs::remove_file(&tmp)?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) if target.exists() => {
                return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
            }
            Err(_) => std::fs::rename(&tmp, &target)?,
        }
        // Make the rename durable; not every file system lets a folder be opened or synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            TransportError::Exists(name.to_owned())
        } else {
            TransportError::io(format!("writing {}", target.display()), e)
        }
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::io("file task", std::io::Error::other(e)))?
}
