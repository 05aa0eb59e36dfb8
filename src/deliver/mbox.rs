//! mbox delivery (mboxrd), durable and crash-safe.
//!
//! Messages are spooled while they download (see [`spool`]), so the mbox is
//! locked only for a local copy. Commit, per batch:
//! lock (dotlock, then fcntl) -> note the size -> journal one intent per
//! message (offset, length, CRC-32) -> append -> fsync -> journal
//! "delivered" -> unlock. Any failure while appending truncates the mbox
//! back to its size before the batch.
//!
//! Recovery after a crash (under the same locks): an intended message whose
//! bytes are in the mbox, whole and with the recorded CRC, was delivered.
//! Otherwise it was not; if the mbox ends in a torn copy of it (and nothing
//! written by anyone else follows), the torn bytes are cut off so that no
//! reader sees half a message.
//!
//! [`spool`]: crate::deliver::spool

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deliver::mbox_lock::MboxLock;
use crate::deliver::spool::Spool;
use crate::deliver::{Deliver, MessageInfo, Outcome, unix_now};
use crate::error::{Context, Kind, Result, cant_create, internal, local_io};
use crate::ledger::{Entry, Ledger, Target};

pub struct Mbox {
    path: PathBuf,
    spool: Spool,
    /// How long to wait for another program's lock on the mbox.
    lock_wait: Duration,
}

impl Mbox {
    pub fn open(path: &Path, state_dir: &Path, lock_wait: Duration) -> Result<Mbox> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !parent.is_dir() {
            return Err(cant_create(format!(
                "cannot create the mbox {}: {} is not a directory",
                path.display(),
                parent.display()
            )));
        }
        if path.is_dir() {
            return Err(cant_create(format!(
                "{} is a directory, not an mbox file",
                path.display()
            )));
        }
        Ok(Mbox {
            path: path.to_path_buf(),
            spool: Spool::new(state_dir, true)?,
            lock_wait,
        })
    }
}

impl Deliver for Mbox {
    fn begin(&mut self, info: &MessageInfo) -> Result<()> {
        self.spool.begin(info);
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.spool.write(chunk)
    }

    fn end(&mut self) -> Result<u64> {
        self.spool.end()
    }

    fn abort(&mut self) {
        self.spool.abort();
    }

    fn staged(&self) -> usize {
        self.spool.items().len()
    }

    fn commit(&mut self, ledger: &mut Ledger, keys: &[String]) -> Result<Vec<Outcome>> {
        let items = self.spool.items().to_vec();
        if items.len() != keys.len() {
            return Err(internal("mbox commit: keys and messages differ in number"));
        }
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let lock = MboxLock::acquire(&self.path, self.lock_wait)?;
        let file = lock.file();
        let size0 = file
            .metadata()
            .ctx(Kind::LocalIo, || format!("reading {}", self.path.display()))?
            .len();
        let prefix = separator_before_append(file, size0)
            .ctx(Kind::LocalIo, || format!("reading {}", self.path.display()))?;
        let mut offset = size0 + prefix.len() as u64;
        let mut placed = Vec::with_capacity(items.len());
        for (key, item) in keys.iter().zip(&items) {
            ledger.intend(
                key,
                Target::Mbox {
                    path: self.path.clone(),
                    offset,
                    len: item.len,
                    crc: item.crc,
                },
            );
            placed.push(offset);
            offset += item.len;
        }
        ledger.commit()?;

        let appended = (|| -> std::io::Result<()> {
            let mut f: &File = file;
            f.seek(SeekFrom::Start(size0))?;
            let mut w = std::io::BufWriter::with_capacity(256 * 1024, f);
            w.write_all(prefix)?;
            for item in &items {
                self.spool.copy_to(item, &mut w)?;
                // Crash tests: each message on disk in turn (a torn batch).
                #[cfg(debug_assertions)]
                {
                    w.flush()?;
                    crate::crash::point("mbox: a message appended, not synced");
                }
            }
            w.flush()?;
            drop(w);
            file.sync_data()?;
            crate::crash::point("mbox synced");
            Ok(())
        })();
        if let Err(e) = appended {
            // Leave the mbox exactly as it was before this batch.
            let _ = file.set_len(size0);
            let _ = file.sync_data();
            return Err(local_io(format!(
                "appending to {} (the mbox is back to its size before the append)",
                self.path.display()
            ))
            .because(e));
        }
        let now = unix_now();
        let mut out = Vec::with_capacity(items.len());
        for ((key, item), at) in keys.iter().zip(&items).zip(placed) {
            let entry = Entry {
                name: format!("mbox@{at}"),
                size: item.len,
                time: now,
                flags: String::new(),
            };
            ledger.delivered(key, entry.clone());
            out.push(Outcome::Delivered {
                entry,
                location: format!("{}@{at}", self.path.display()),
            });
        }
        ledger.commit()?;
        drop(lock);
        self.spool.clear();
        Ok(out)
    }
}

/// What must precede a new `From ` line so that readers see it as one: the
/// mbox must be empty or end in a blank line.
fn separator_before_append(f: &File, size: u64) -> std::io::Result<&'static [u8]> {
    if size == 0 {
        return Ok(b"");
    }
    let mut tail = [0u8; 2];
    let n = if size >= 2 { 2 } else { 1 };
    f.read_exact_at(&mut tail[..n], size - n as u64)?;
    let tail = &tail[..n];
    Ok(if tail.ends_with(b"\n\n") || (size == 1 && tail == b"\n") {
        b""
    } else if tail.ends_with(b"\n") {
        b"\n"
    } else {
        b"\n\n"
    })
}

/// Settle mbox intents left by a crashed run. Returns, per intent, the
/// entry when the message is in the mbox whole, or None. What is worth a
/// warning (a torn copy that later mail follows, left as it is) goes to
/// `warn`.
#[allow(clippy::type_complexity)]
pub fn recover(
    intents: &[(String, PathBuf, u64, u64, u32)],
    lock_wait: Duration,
    warn: &mut dyn FnMut(String),
) -> Result<Vec<(String, Option<Entry>)>> {
    let mut by_path: BTreeMap<&PathBuf, Vec<&(String, PathBuf, u64, u64, u32)>> = BTreeMap::new();
    for i in intents {
        by_path.entry(&i.1).or_default().push(i);
    }
    let mut out = Vec::with_capacity(intents.len());
    let now = unix_now();
    for (path, mut list) in by_path {
        list.sort_by_key(|i| i.2);
        if !path.exists() {
            out.extend(list.iter().map(|i| (i.0.clone(), None)));
            continue;
        }
        let lock = MboxLock::acquire(path, lock_wait)?;
        let file = lock.file();
        let size = file
            .metadata()
            .ctx(Kind::LocalIo, || format!("reading {}", path.display()))?
            .len();
        let mut torn_at = None;
        for &(key, _, offset, len, crc) in &list {
            let whole = torn_at.is_none()
                && offset + len <= size
                && crc_of(file, *offset, *len)
                    .ctx(Kind::LocalIo, || format!("reading {}", path.display()))?
                    == *crc;
            if whole {
                out.push((
                    key.clone(),
                    Some(Entry {
                        name: format!("mbox@{offset}"),
                        size: *len,
                        time: now,
                        flags: String::new(),
                    }),
                ));
            } else {
                torn_at.get_or_insert(*offset);
                out.push((key.clone(), None));
            }
        }
        file.sync_data()
            .ctx(Kind::LocalIo, || format!("fsync {}", path.display()))?;
        if let Some(cut) = torn_at
            && cut < size
        {
            if foreign_message_after(file, cut, size)
                .ctx(Kind::LocalIo, || format!("reading {}", path.display()))?
            {
                warn(format!(
                    "{} holds part of a message from an interrupted run at byte {cut}, \
                     followed by mail written since; it was left as it is",
                    path.display()
                ));
            } else {
                file.set_len(cut)
                    .and_then(|_| file.sync_data())
                    .ctx(Kind::LocalIo, || format!("truncating {}", path.display()))?;
            }
        }
        drop(lock);
    }
    Ok(out)
}

fn crc_of(f: &File, offset: u64, len: u64) -> std::io::Result<u32> {
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = offset;
    let end = offset + len;
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = f.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(h.finalize())
}

/// Whether a `From ` line (a message we did not write) starts somewhere in
/// `(start, end)`. Our torn message has exactly one, at `start`: mboxrd
/// quoting leaves no other line starting with `From `.
fn foreign_message_after(f: &File, start: u64, end: u64) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = start + 1;
    let mut prev_nl = false;
    let mut carry: Vec<u8> = Vec::new();
    while pos < end {
        let want = ((end - pos) as usize).min(buf.len());
        let n = f.read_at(&mut buf[..want], pos)?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        let mut i = 0;
        while i < carry.len() {
            if prev_nl && carry[i..].starts_with(b"From ") {
                return Ok(true);
            }
            if prev_nl && carry.len() - i < 5 && b"From ".starts_with(&carry[i..]) {
                break; // need more bytes to decide
            }
            prev_nl = carry[i] == b'\n';
            i += 1;
        }
        carry.drain(..i);
        pos += n as u64;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mbox");
        std::fs::write(&p, bytes).unwrap();
        let f = File::options().read(true).write(true).open(&p).unwrap();
        (dir, f)
    }

    type Intent = (String, PathBuf, u64, u64, u32);

    fn intent(path: &Path, key: &str, offset: usize, msg: &[u8]) -> Intent {
        (
            key.into(),
            path.to_path_buf(),
            offset as u64,
            msg.len() as u64,
            crc32fast::hash(msg),
        )
    }

    #[test]
    fn recovery_keeps_whole_cuts_torn_and_spares_foreign_mail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mbox");
        let before = b"From old Mon Jan  1 00:00:00 2024\nold\n\n".to_vec();
        let a = b"From a@x Mon Nov 23 10:00:00 2026\nA body\n\n".to_vec();
        let b = b"From b@x Mon Nov 23 10:00:01 2026\nB body is longer\n\n".to_vec();
        let wait = Duration::from_secs(2);

        // A whole, B torn at the end: A delivered, B not, B's bytes cut off.
        let mut content = [before.clone(), a.clone(), b[..12].to_vec()].concat();
        std::fs::write(&p, &content).unwrap();
        let intents = [
            intent(&p, "k:a", before.len(), &a),
            intent(&p, "k:b", before.len() + a.len(), &b),
        ];
        let r = recover(&intents, wait, &mut |_| {}).unwrap();
        assert!(r[0].1.is_some() && r[1].1.is_none(), "{r:?}");
        assert_eq!(
            std::fs::read(&p).unwrap(),
            [before.clone(), a.clone()].concat()
        );

        // B torn, then someone else's message: nothing is cut.
        content = [
            before.clone(),
            b[..12].to_vec(),
            b"\nFrom other Tue\nhi\n\n".to_vec(),
        ]
        .concat();
        std::fs::write(&p, &content).unwrap();
        let r = recover(&[intent(&p, "k:b", before.len(), &b)], wait, &mut |_| {}).unwrap();
        assert!(r[0].1.is_none());
        assert_eq!(std::fs::read(&p).unwrap(), content);

        // Same length, other bytes (not ours): not delivered, not cut.
        let other = vec![b'z'; b.len()];
        content = [before.clone(), other].concat();
        std::fs::write(&p, &content).unwrap();
        let r = recover(&[intent(&p, "k:b", before.len(), &b)], wait, &mut |_| {}).unwrap();
        assert!(r[0].1.is_none());

        // Never appended, or the mbox is gone.
        std::fs::write(&p, &before).unwrap();
        let r = recover(&[intent(&p, "k:b", before.len(), &b)], wait, &mut |_| {}).unwrap();
        assert!(r[0].1.is_none());
        assert_eq!(std::fs::read(&p).unwrap(), before);
        let gone = dir.path().join("gone");
        let r = recover(&[intent(&gone, "k:b", 0, &b)], wait, &mut |_| {}).unwrap();
        assert!(r[0].1.is_none());
        assert!(!gone.exists(), "recovery does not create an mbox");
    }

    #[test]
    fn separators() {
        for (content, want) in [
            (&b""[..], &b""[..]),
            (b"\n", b""),
            (b"x\n\n", b""),
            (b"x\n", b"\n"),
            (b"x", b"\n\n"),
        ] {
            let (_d, f) = with_file(content);
            assert_eq!(
                separator_before_append(&f, content.len() as u64).unwrap(),
                want
            );
        }
    }

    #[test]
    fn foreign_from_lines_are_found_across_reads() {
        let mut data = b"From me Mon\n>From quoted\nbody\n".to_vec();
        let (_d, f) = with_file(&data);
        assert!(!foreign_message_after(&f, 0, data.len() as u64).unwrap());
        data.extend_from_slice(&vec![b'x'; 70_000]);
        data.extend_from_slice(b"\nFrom other Tue\n");
        let (_d, f) = with_file(&data);
        assert!(foreign_message_after(&f, 0, data.len() as u64).unwrap());
    }
}
