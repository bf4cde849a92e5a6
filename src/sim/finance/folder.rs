//! The folder receiver: what KMD Opus does with the files dropped over SFTP.

use super::{Books, process_request};
use std::io;
use std::path::Path;

/// Processes every complete request file (`*.xml`, not dot files, so not the `.name.part`
/// files being written) in `inbox`, sorted by name: books it, writes
/// `<name without .xml>_reply.xml` into `reply_dir` (as `.…part`, then renamed) and moves the
/// request into `inbox/processed/`. Returns how many files it processed; does nothing (0)
/// while the books are [down](Books::set_down). A missing inbox holds nothing.
pub fn process_folder(books: &Books, inbox: &Path, reply_dir: &Path) -> io::Result<usize> {
    if books.is_down() {
        return Ok(0);
    }
    let entries = match std::fs::read_dir(inbox) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !name.starts_with('.') && name.len() > 4 && name.to_ascii_lowercase().ends_with(".xml") {
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Ok(0);
    }
    std::fs::create_dir_all(reply_dir)?;
    let processed = inbox.join("processed");
    std::fs::create_dir_all(&processed)?;
    for name in &names {
        let path = inbox.join(name);
        let request = std::fs::read(&path)?;
        let reply = process_request(books, &request);
        let stem = &name[..name.len() - 4];
        let reply_name = format!("{stem}_reply.xml");
        let tmp = reply_dir.join(format!(".{reply_name}.part"));
        std::fs::write(&tmp, &reply)?;
        std::fs::rename(&tmp, reply_dir.join(&reply_name))?;
        std::fs::rename(&path, processed.join(name))?;
    }
    Ok(names.len())
}
