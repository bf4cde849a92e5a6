//! The `files` source: a landing folder where delivery reports are dropped (the usual SFTP
//! landing folder), and the `import` command's reading of files and folders.
//!
//! Each file is read once, tracked by the sha256 of its content, so a re-dropped copy changes
//! nothing. A read file moves to the archive folder and a refused one to the rejected folder
//! with `<name>.reason.txt` beside it, both only after what the file held is committed: a crash
//! in between leaves the file in place, and the next poll archives it without reading it again.

use super::Format;
use super::ingest::{ImportSummary, Ingestor, ReadOutcome, Tally};
use crate::progress::{Progress, Show};
use crate::store::{IngestedFile, StoreError};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Configuration of a `files` source.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesConfig {
    /// The landing folder; only `*.json` and `*.xml` files directly in it are read (names
    /// starting with `.` and ending in `.tmp` or `.part` are files still being written).
    pub dir: PathBuf,
    /// Where read files go (default `<dir>/archive`).
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
    /// Where refused files go, each with a `.reason.txt` beside it (default `<dir>/rejected`).
    #[serde(default)]
    pub rejected_dir: Option<PathBuf>,
    /// Largest file read, in bytes (default 64 MiB): a larger one is rejected unread, with
    /// its size and the limit in its reason file, so one huge file cannot exhaust memory.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

/// Default of [`FilesConfig::max_file_bytes`] and of `import --max-file-bytes`: 64 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

impl FilesConfig {
    /// The archive folder.
    pub fn archive(&self) -> PathBuf {
        self.archive_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("archive"))
    }

    /// The rejected folder.
    pub fn rejected(&self) -> PathBuf {
        self.rejected_dir
            .clone()
            .unwrap_or_else(|| self.dir.join("rejected"))
    }
}

/// A failure of the source as a whole (one bad file is a rejection, not this).
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The folder could not be listed, or a file not moved.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed; nothing of the pending batch was stored, and its files stay in place.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// sha256 hex of a file's bytes.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn is_in_progress(name: &str) -> bool {
    name.starts_with('.') || name.ends_with(".tmp") || name.ends_with(".part")
}

/// The files to read under `paths`: files as given, folders recursively (sorted by path), only
/// `.json` and `.xml` files from folders.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FilesError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(io(path))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(io(path))?
                .map(|e| e.map(|e| e.path()).map_err(io(path)))
                .collect::<Result<_, _>>()?;
            entries.sort();
            for entry in entries {
                let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
                if entry.is_dir() {
                    out.extend(collect(std::slice::from_ref(&entry))?);
                } else if Format::from_path(&entry).is_some() && !is_in_progress(name) {
                    out.push(entry);
                }
            }
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// What to do with a file once its batch is committed.
enum After {
    Archive(PathBuf),
    Reject(PathBuf, String),
}

/// Reads files into the store (the `import` command): the inputs are left where they are.
/// Importing the same files twice changes nothing. A file above `max_file_bytes` is rejected
/// unread.
pub async fn import(
    ingestor: &Ingestor,
    paths: &[PathBuf],
    max_file_bytes: u64,
    show: Show,
) -> Result<ImportSummary, FilesError> {
    let files = collect(paths)?;
    read_files(ingestor, &files, None, max_file_bytes, show).await
}

/// Polls a landing folder once: reads every waiting file, then archives or rejects it.
pub async fn poll(ingestor: &Ingestor, cfg: &FilesConfig) -> Result<ImportSummary, FilesError> {
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(&cfg.dir).map_err(io(&cfg.dir))? {
        let path = entry.map_err(io(&cfg.dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_file() && !is_in_progress(name) {
            entries.push(path);
        }
    }
    entries.sort();
    for dir in [cfg.archive(), cfg.rejected()] {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    }
    read_files(ingestor, &entries, Some(cfg), cfg.max_file_bytes, Show::Log).await
}

/// Why a file above the limit is refused.
pub fn too_large(size: u64, limit: u64) -> String {
    format!(
        "the file is {size} bytes, above the limit of {limit} bytes (`max_file_bytes` of a files source, `--max-file-bytes` of import); it was not read"
    )
}

/// Reads a file of at most `limit` bytes: `Ok(None)` when it is larger (checked before and
/// while reading, so a file still growing cannot slip past).
fn read_at_most(path: &Path, limit: u64) -> std::io::Result<Result<Vec<u8>, u64>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    if size > limit {
        return Ok(Err(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Err(bytes.len() as u64));
    }
    Ok(Ok(bytes))
}

/// One file, read and parsed on a worker thread, in its turn for the writer.
enum Prepared {
    /// Above the size limit: its size.
    TooLarge(u64),
    /// Could not be read.
    Unreadable(String),
    /// Its content was read before (by content hash).
    AlreadyRead,
    /// Neither JSON nor XML.
    Unknown,
    /// Parsed.
    Parsed {
        hash: String,
        bytes: u64,
        outcome: Box<ReadOutcome>,
        tally: Box<Tally>,
    },
}

/// Files read and parsed at once, ahead of the writer: one per core.
fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Reads, hashes and parses one file on a blocking thread; the store is asked once per file
/// whether its content was read before (no parse then).
async fn prepare(ingestor: Ingestor, path: PathBuf, max_file_bytes: u64) -> Prepared {
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            read_at_most(&path, max_file_bytes).map(|r| r.map(|b| (content_hash(&b), b)))
        })
        .await
    };
    let (hash, bytes) = match read {
        Ok(Ok(Ok(x))) => x,
        Ok(Ok(Err(size))) => return Prepared::TooLarge(size),
        Ok(Err(e)) => return Prepared::Unreadable(e.to_string()),
        Err(e) => return Prepared::Unreadable(e.to_string()),
    };
    match ingestor.store().file_ingested(&hash).await {
        Ok(true) => return Prepared::AlreadyRead,
        Ok(false) => {}
        // The writer asks again, and stops on the store's error.
        Err(_) => {}
    }
    let Some(format) = Format::from_path(&path).or_else(|| Format::sniff(&bytes)) else {
        return Prepared::Unknown;
    };
    let size = bytes.len() as u64;
    let name = path.display().to_string();
    let parsed = tokio::task::spawn_blocking(move || {
        let (mut outcome, tally) = ingestor.counted(ingestor.parse(&bytes, format), &name);
        drop(bytes);
        outcome.serialize();
        (outcome, tally)
    });
    match parsed.await {
        Ok((outcome, tally)) => Prepared::Parsed {
            hash,
            bytes: size,
            outcome: Box::new(outcome),
            tally: Box::new(tally),
        },
        Err(e) => Prepared::Unreadable(e.to_string()),
    }
}

async fn read_files(
    ingestor: &Ingestor,
    files: &[PathBuf],
    landing: Option<&FilesConfig>,
    max_file_bytes: u64,
    show: Show,
) -> Result<ImportSummary, FilesError> {
    use futures_util::StreamExt;
    let total_bytes: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let what = if landing.is_some() {
        "landing folder"
    } else {
        "import"
    };
    let progress = Progress::start(what, files.len() as u64, total_bytes, show);
    // Parsing runs ahead on every core, in file order, at most a few files in memory.
    let (tx, mut rx) = tokio::sync::mpsc::channel(workers());
    let producer = {
        let ingestor = ingestor.clone();
        let files = files.to_vec();
        tokio::spawn(async move {
            let mut prepared = futures_util::stream::iter(files)
                .map(|path| prepare(ingestor.clone(), path, max_file_bytes))
                .buffered(workers());
            while let Some(p) = prepared.next().await {
                if tx.send(p).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut batch = ingestor.batch();
    let mut pending: Vec<After> = Vec::new();
    for path in files {
        let Some(prepared) = rx.recv().await else {
            break;
        };
        let name = path.display().to_string();
        let (hash, size, outcome, tally) = match prepared {
            Prepared::TooLarge(size) => {
                let reason = too_large(size, max_file_bytes);
                tracing::warn!(message = "File refused: too large.", file = %name, bytes = size, limit = max_file_bytes);
                batch.reject(&name, &reason);
                pending.push(After::Reject(path.clone(), reason));
                progress.file_done(0, 0);
                continue;
            }
            Prepared::Unreadable(e) => {
                batch.reject(&name, format!("cannot read the file: {e}"));
                progress.file_done(0, 0);
                continue;
            }
            Prepared::AlreadyRead => {
                batch.already_read();
                pending.push(After::Archive(path.clone()));
                progress.file_done(0, 0);
                continue;
            }
            Prepared::Unknown => {
                let reason =
                    "neither a .json nor a .xml file, and its content is neither".to_owned();
                batch.reject(&name, &reason);
                pending.push(After::Reject(path.clone(), reason));
                progress.file_done(0, 0);
                continue;
            }
            Prepared::Parsed {
                hash,
                bytes,
                outcome,
                tally,
            } => (hash, bytes, *outcome, *tally),
        };
        // Asked again in turn: the answer ahead of time may predate a batch of this import.
        if ingestor.store().file_ingested(&hash).await? {
            batch.already_read();
            pending.push(After::Archive(path.clone()));
            progress.file_done(size, 0);
            continue;
        }
        let bundles_before = batch.bundles();
        ingestor.count(&mut batch, tally);
        progress.file_done(size, batch.bundles() - bundles_before);
        let problems = outcome.problems.clone();
        // A file with a bad Bundle is not recorded as read: its good Bundles are stored, and a
        // corrected copy dropped again is read again (what was stored is then unchanged).
        let file = problems.is_empty().then(|| IngestedFile {
            content_hash: hash,
            source: ingestor.source().to_owned(),
            file_name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        });
        if problems.is_empty() {
            pending.push(After::Archive(path.clone()));
        } else {
            for p in &problems {
                batch.reject(&name, p);
            }
            pending.push(After::Reject(path.clone(), problems.join("\n")));
        }
        if batch.push(outcome, file).await? {
            settle(landing, &mut pending)?;
        }
    }
    drop(rx);
    let _ = producer.await;
    batch.flush(None).await?;
    settle(landing, &mut pending)?;
    progress.finish();
    Ok(batch.finish().await?)
}

/// Moves the files whose batch is committed (landing folder only).
fn settle(landing: Option<&FilesConfig>, pending: &mut Vec<After>) -> Result<(), FilesError> {
    let Some(cfg) = landing else {
        pending.clear();
        return Ok(());
    };
    for after in pending.drain(..) {
        match after {
            After::Archive(path) => {
                move_into(&path, &cfg.archive())?;
            }
            After::Reject(path, reason) => {
                let target = move_into(&path, &cfg.rejected())?;
                let mut reason_file = target.into_os_string();
                reason_file.push(".reason.txt");
                let reason_file = PathBuf::from(reason_file);
                std::fs::write(&reason_file, format!("{reason}\n")).map_err(io(&reason_file))?;
            }
        }
    }
    Ok(())
}

/// Moves `path` into `dir`, keeping its name, or adding a number when the name is taken.
fn move_into(path: &Path, dir: &Path) -> Result<PathBuf, FilesError> {
    let name = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let mut target = dir.join(&name);
    let mut n = 1;
    while target.exists() {
        target = dir.join(format!("{n}-{name}"));
        n += 1;
    }
    std::fs::rename(path, &target).map_err(io(path))?;
    Ok(target)
}
