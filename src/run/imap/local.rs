//! The local side of an IMAP folder in a Maildir: its messages by name
//! (a scan, or a cheap look where nothing changed), its stamp (have new/
//! or cur/ changed since the last sync?), and, for `--resync`, its
//! messages by content.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::flagsync::Known;
use super::parse_key;
use crate::error::Result;
use crate::imap::flags;
use crate::ledger::Ledger;

/// SHA-256 of message bytes as stored.
fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}

/// For --resync: the local messages of `folder` known under another
/// UIDVALIDITY, by the SHA-256 of their files, and those entries' keys
/// (removed once the folder is resynced).
#[allow(clippy::type_complexity)]
pub(super) fn resync_index(
    ledger: &Ledger,
    folder: &str,
    uv: u32,
    dir: &Path,
) -> Result<(HashMap<[u8; 32], (String, u64)>, Vec<String>)> {
    let local = scan_maildir(dir)?;
    let mut index = HashMap::new();
    let mut stale = Vec::new();
    for (k, e) in ledger.entries() {
        let Some((v, _, f)) = parse_key(k) else {
            continue;
        };
        if f != folder || v == uv {
            continue;
        }
        stale.push(k.clone());
        if let Some((path, _)) = local.get(e.name.as_str()) {
            let bytes = std::fs::read(path).map_err(|e| {
                crate::error::local_io(format!("reading {}", path.display())).because(e)
            })?;
            index.insert(sha256(&bytes), (e.name.clone(), bytes.len() as u64));
        }
    }
    Ok((index, stale))
}

/// A directory's modification time in ns, if it can be read.
pub(super) fn mtime_ns(path: &Path) -> Option<u64> {
    std::fs::metadata(path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
}

/// The local folder's stamp: `new/` and `cur/` modification times (ns),
/// combined; 0 if unknown.
pub(super) fn stamp(dir: &Path) -> u64 {
    match (mtime_ns(&dir.join("new")), mtime_ns(&dir.join("cur"))) {
        (Some(n), Some(c)) => n.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(c).max(1),
        _ => 0,
    }
}

/// Find the files of `mine` without scanning, where the folder is known
/// unchanged since the last sync: each is where that sync left it
/// (`new/NAME` without flags, `cur/NAME:2,LETTERS` with). Falls back to a
/// scan if any is not there (another client's letters, say).
pub(super) fn locate(dir: &Path, mine: &[Known]) -> Result<HashMap<String, (PathBuf, String)>> {
    let mut out = HashMap::with_capacity(mine.len());
    for Known { name, base, .. } in mine {
        let letters = flags::maildir_letters(&flags::from_ledger(base));
        let candidates = if letters.is_empty() {
            vec![
                dir.join("new").join(name),
                dir.join("cur").join(format!("{name}:2,")),
            ]
        } else {
            vec![dir.join("cur").join(flags::with_letters(name, &letters))]
        };
        match candidates.into_iter().find(|p| p.exists()) {
            Some(p) => {
                out.insert(name.clone(), (p, letters));
            }
            None => return scan_maildir(dir),
        }
    }
    Ok(out)
}

/// The messages in a Maildir folder: base name (without `:2,` info) ->
/// (path, flag letters).
pub(super) fn scan_maildir(dir: &Path) -> Result<HashMap<String, (PathBuf, String)>> {
    let mut out = HashMap::new();
    for sub in ["new", "cur"] {
        let d = dir.join(sub);
        let rd = match std::fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(crate::error::local_io(format!("reading {}", d.display())).because(e));
            }
        };
        for entry in rd.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let (base, letters) = flags::split_maildir_name(name);
            out.insert(
                base.to_string(),
                (entry.path(), letters.unwrap_or_default().to_string()),
            );
        }
    }
    Ok(out)
}
