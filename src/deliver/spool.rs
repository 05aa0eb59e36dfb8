//! A batch spool: messages of one batch written one after another into an
//! anonymous temporary file in the account's state directory (see
//! `platform::anonymous_file`: a crash leaves nothing behind), for the destinations that deliver at
//! commit time: mbox (so the mbox lock is held only for a local copy, never
//! for a download), an MDA and stdout.
//!
//! In mboxrd mode each message is stored ready to append: a `From ` line
//! (envelope sender from the headers, the server's date or now), the
//! message with `>*From ` lines quoted, a final newline if missing, and the
//! blank line that ends an mbox message. Otherwise the bytes are stored as
//! they came. Either way the envelope sender is noted for the MDA's `%F`.

use std::fs::File;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::deliver::MessageInfo;
use crate::deliver::mboxrd::{FromQuoter, HeaderSniffer, envelope_sender, from_line, return_path};
use crate::error::{Context, Kind, Result, internal, local_io};

/// One message in the spool.
#[derive(Debug, Clone)]
pub struct Item {
    pub offset: u64,
    pub len: u64,
    /// CRC-32 of the item's bytes.
    pub crc: u32,
    /// Envelope sender (Return-Path, else From, else MAILER-DAEMON).
    pub sender: String,
    /// The Return-Path header's address alone (Some("") for `<>`), for
    /// LMTP and SMTP, which must not invent a sender.
    pub return_path: Option<String>,
    /// Some byte of the message is not ASCII (SMTP needs 8BITMIME).
    pub eight_bit: bool,
}

struct Current {
    start: u64,
    /// Holds the message's beginning until the end of its header is seen.
    sniffer: HeaderSniffer,
    /// The From line and the held header have been written.
    head_written: bool,
    quoter: FromQuoter,
    crc: crc32fast::Hasher,
    sender: String,
    return_path: Option<String>,
    eight_bit: bool,
    received: Option<i64>,
    /// Maildir flag letters, for mutt's Status/X-Status headers in mbox.
    flags: Option<String>,
}

/// What [`Spool`] gathers before writing.
const WRITE_BUF: usize = 64 * 1024;

pub struct Spool {
    file: File,
    path: PathBuf,
    /// Bytes in the spool, counting `pending`.
    len: u64,
    /// The current message's last bytes, not written yet (one pwrite per
    /// WRITE_BUF instead of one per piece the socket gave).
    pending: Vec<u8>,
    mboxrd: bool,
    items: Vec<Item>,
    cur: Option<Current>,
    scratch: Vec<u8>,
}

impl Spool {
    /// A new, empty spool in `dir`.
    pub fn new(dir: &Path, mboxrd: bool) -> Result<Spool> {
        let file = crate::platform::anonymous_file(dir).map_err(|e| {
            local_io(format!("creating a spool file in {}", dir.display())).because(e)
        })?;
        Ok(Spool {
            file,
            path: dir.to_path_buf(),
            len: 0,
            pending: Vec::with_capacity(WRITE_BUF),
            mboxrd,
            items: Vec::new(),
            cur: None,
            scratch: Vec::with_capacity(64 * 1024),
        })
    }

    pub fn begin(&mut self, info: &MessageInfo) {
        self.abort();
        self.cur = Some(Current {
            start: self.len,
            sniffer: HeaderSniffer::new(),
            head_written: false,
            quoter: FromQuoter::new(),
            crc: crc32fast::Hasher::new(),
            sender: String::new(),
            return_path: None,
            eight_bit: false,
            received: info.received,
            flags: info.flags.clone(),
        });
    }

    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        let cur = self
            .cur
            .as_mut()
            .ok_or_else(|| internal("spool write without begin"))?;
        if !cur.head_written {
            match cur.sniffer.push(chunk) {
                None => return Ok(()),
                Some(n) => {
                    self.flush_head()?;
                    return self.emit(&chunk[n..]);
                }
            }
        }
        self.emit(chunk)
    }

    /// The header is complete (or capped, or the message ended): note the
    /// sender, write the `From ` line and what was held.
    fn flush_head(&mut self) -> Result<()> {
        let Some(cur) = self.cur.as_mut() else {
            return Ok(());
        };
        if cur.head_written {
            return Ok(());
        }
        cur.head_written = true;
        let head = cur.sniffer.finish();
        cur.sender = envelope_sender(&head);
        cur.return_path = return_path(&head);
        if self.mboxrd {
            let time = cur
                .received
                .unwrap_or_else(|| crate::deliver::unix_now() as i64);
            let mut lines = from_line(&cur.sender, time);
            if let Some(letters) = &cur.flags {
                lines.push_str(&status_headers(letters));
            }
            self.put(lines.as_bytes())?;
        }
        self.emit(&head)
    }

    /// Quote (in mboxrd mode) and store message bytes.
    fn emit(&mut self, chunk: &[u8]) -> Result<()> {
        if self.mboxrd {
            let mut out = std::mem::take(&mut self.scratch);
            out.clear();
            if let Some(cur) = self.cur.as_mut() {
                cur.quoter.quote(chunk, &mut out);
            }
            let r = self.put(&out);
            self.scratch = out;
            r
        } else {
            self.put(chunk)
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.pending.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        if let Some(cur) = self.cur.as_mut() {
            cur.crc.update(bytes);
            cur.eight_bit = cur.eight_bit || !bytes.is_ascii();
        }
        if self.pending.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    /// Write the pending bytes.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let at = self.len - self.pending.len() as u64;
        self.file
            .write_all_at(&self.pending, at)
            .ctx(Kind::LocalIo, || {
                format!("writing the spool in {}", self.path.display())
            })?;
        self.pending.clear();
        Ok(())
    }

    /// The message is complete. Returns its size in the spool.
    pub fn end(&mut self) -> Result<u64> {
        self.flush_head()?;
        if self.mboxrd {
            let mut tail = Vec::new();
            if let Some(cur) = self.cur.as_mut() {
                cur.quoter.finish(&mut tail);
            }
            tail.push(b'\n'); // the blank line that ends an mbox message
            self.put(&tail)?;
        }
        self.flush()?;
        let cur = self
            .cur
            .take()
            .ok_or_else(|| internal("spool end without begin"))?;
        let item = Item {
            offset: cur.start,
            len: self.len - cur.start,
            crc: cur.crc.finalize(),
            sender: cur.sender,
            return_path: cur.return_path,
            eight_bit: cur.eight_bit,
        };
        let len = item.len;
        self.items.push(item);
        Ok(len)
    }

    /// Drop the message in progress.
    pub fn abort(&mut self) {
        self.pending.clear();
        if let Some(cur) = self.cur.take() {
            self.len = cur.start;
            let _ = self.file.set_len(cur.start);
        }
    }

    pub fn items(&self) -> &[Item] {
        &self.items
    }

    /// Copy `item`'s bytes to `out`.
    pub fn copy_to(&self, item: &Item, out: &mut dyn Write) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pos = item.offset;
        let end = item.offset + item.len;
        while pos < end {
            let want = ((end - pos) as usize).min(buf.len());
            let n = self.file.read_at(&mut buf[..want], pos)?;
            if n == 0 {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "spool cut short",
                ));
            }
            out.write_all(&buf[..n])?;
            pos += n as u64;
        }
        Ok(())
    }

    /// Forget all items (after a commit).
    pub fn clear(&mut self) {
        self.abort();
        self.pending.clear();
        self.items.clear();
        self.len = 0;
        let _ = self.file.set_len(0);
    }
}

/// The `Status:` and `X-Status:` headers mutt writes for a message's flags
/// (given as Maildir letters): `Status: RO` for a read message, `X-Status:`
/// with A(nswered), F(lagged), T (draft) and D(eleted). A new, unflagged
/// message gets none.
pub fn status_headers(letters: &str) -> String {
    let mut out = String::new();
    if letters.contains('S') {
        out.push_str("Status: RO\n");
    }
    let x: String = [('R', 'A'), ('F', 'F'), ('D', 'T'), ('T', 'D')]
        .iter()
        .filter(|(m, _)| letters.contains(*m))
        .map(|&(_, x)| x)
        .collect();
    if !x.is_empty() {
        out.push_str(&format!("X-Status: {x}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spool_one(mboxrd: bool, msg: &[u8], split: usize) -> (Vec<u8>, Item) {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), mboxrd).unwrap();
        s.begin(&MessageInfo {
            received: Some(1_795_435_200),
            flags: None,
        });
        for c in msg.chunks(split.max(1)) {
            s.write(c).unwrap();
        }
        s.end().unwrap();
        let item = s.items()[0].clone();
        let mut out = Vec::new();
        s.copy_to(&item, &mut out).unwrap();
        assert_eq!(crc32fast::hash(&out), item.crc);
        (out, item)
    }

    #[test]
    fn mboxrd_item_is_ready_to_append() {
        let msg = b"Return-Path: <a@b.example>\nSubject: x\n\nFrom here\n>From there\nend";
        for split in [1, 3, 7, 1000] {
            let (out, item) = spool_one(true, msg, split);
            assert_eq!(item.sender, "a@b.example");
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with("From a@b.example "), "{text}");
            assert!(
                text.ends_with("\n>From here\n>>From there\nend\n\n"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn status_headers_like_mutt() {
        assert_eq!(status_headers(""), "");
        assert_eq!(status_headers("S"), "Status: RO\n");
        assert_eq!(status_headers("FRS"), "Status: RO\nX-Status: AF\n");
        assert_eq!(status_headers("DT"), "X-Status: TD\n");
    }

    #[test]
    fn raw_item_keeps_bytes() {
        let msg = b"From: c@d.example\n\nbody without newline";
        let (out, item) = spool_one(false, msg, 5);
        assert_eq!(out, msg);
        assert_eq!(item.sender, "c@d.example");
    }

    #[test]
    fn abort_and_several_items() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), false).unwrap();
        s.begin(&MessageInfo::default());
        s.write(b"one\n").unwrap();
        s.end().unwrap();
        s.begin(&MessageInfo::default());
        s.write(b"half of two").unwrap();
        s.abort();
        s.begin(&MessageInfo::default());
        s.write(b"three\n").unwrap();
        s.end().unwrap();
        let items = s.items().to_vec();
        assert_eq!(items.len(), 2);
        let mut out = Vec::new();
        s.copy_to(&items[1], &mut out).unwrap();
        assert_eq!(out, b"three\n");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing named on disk"
        );
        s.clear();
        assert!(s.items().is_empty());
    }

    #[test]
    fn headerless_and_huge_headers_still_flow() {
        let (out, item) = spool_one(false, b"no header at all", 4);
        assert_eq!(out, b"no header at all");
        assert_eq!(item.sender, "MAILER-DAEMON");
        let big = vec![b'X'; crate::deliver::mboxrd::HEADER_CAP + 10];
        let (out, _) = spool_one(false, &big, 4096);
        assert_eq!(out, big);
    }
}
