//! The ledger's bytes, with no I/O: records in, bytes out, and back.
//!
//! Both files start with a header (magic, format version, generation).
//! Every record is framed as `len u32le | crc32 u32le | payload`; numbers
//! in a payload are LEB128, strings length-prefixed. Reading stops at a
//! torn tail (a record cut short, or zeros, at the end: the crash of a
//! writer) and says where; a bad record followed by good data is
//! corruption.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::{Entry, FolderState, Intent, Rejection, Target};

pub(super) const JOURNAL_MAGIC: &[u8; 8] = b"FETCHJNL";
pub(super) const SNAPSHOT_MAGIC: &[u8; 8] = b"FETCHSNP";
pub(super) const VERSION: u32 = 1;
pub(super) const HEADER_LEN: usize = 8 + 4 + 8;
pub(super) const FRAME_LEN: usize = 8;
/// No record we write is anywhere near this; a larger length is corruption.
const MAX_RECORD: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Record {
    Meta {
        account: String,
    },
    Intent(Intent),
    Delivered {
        key: String,
        entry: Entry,
    },
    Removed {
        key: String,
    },
    Aborted {
        key: String,
    },
    Flags {
        key: String,
        flags: String,
    },
    Folder {
        name: String,
        state: FolderState,
    },
    /// A mail server refused the message for good (LMTP/SMTP 5xx). A
    /// record type of its own, not a kind of `Delivered`: a fetch too old to
    /// know it stops at it (a damaged ledger, exit 65) instead of taking
    /// the message for delivered and deleting it from the server.
    Rejected {
        key: String,
        rejection: Rejection,
    },
    End {
        count: u64,
    },
}

const T_META: u8 = 1;
const T_INTENT: u8 = 2;
const T_DELIVERED: u8 = 3;
const T_REMOVED: u8 = 4;
const T_ABORTED: u8 = 5;
const T_INTENT_MBOX: u8 = 6;
const T_FLAGS: u8 = 7;
const T_FOLDER: u8 = 8;
const T_REJECTED: u8 = 9;
const T_END: u8 = 0x7f;

impl Record {
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_LEN]);
        match self {
            Record::Meta { account } => {
                out.push(T_META);
                put_str(out, account);
            }
            Record::Intent(Intent {
                key,
                target: Target::Maildir { dir, name },
            }) => {
                out.push(T_INTENT);
                put_str(out, key);
                put_bytes(out, dir.as_os_str().as_bytes());
                put_str(out, name);
            }
            Record::Intent(Intent {
                key,
                target:
                    Target::Mbox {
                        path,
                        offset,
                        len,
                        crc,
                    },
            }) => {
                out.push(T_INTENT_MBOX);
                put_str(out, key);
                put_bytes(out, path.as_os_str().as_bytes());
                put_u64(out, *offset);
                put_u64(out, *len);
                put_u64(out, u64::from(*crc));
            }
            Record::Delivered { key, entry } => {
                out.push(T_DELIVERED);
                put_str(out, key);
                put_str(out, &entry.name);
                put_u64(out, entry.size);
                put_u64(out, entry.time);
                if !entry.flags.is_empty() {
                    put_str(out, &entry.flags);
                }
            }
            Record::Flags { key, flags } => {
                out.push(T_FLAGS);
                put_str(out, key);
                put_str(out, flags);
            }
            Record::Folder { name, state } => {
                out.push(T_FOLDER);
                put_str(out, name);
                put_u64(out, u64::from(state.uid_validity));
                put_u64(out, u64::from(state.last_uid));
                put_u64(out, state.mod_seq);
                put_u64(out, state.local_stamp);
            }
            Record::Rejected { key, rejection } => {
                out.push(T_REJECTED);
                put_str(out, key);
                put_u64(out, rejection.time);
                put_str(out, &rejection.reason);
            }
            Record::Removed { key } => {
                out.push(T_REMOVED);
                put_str(out, key);
            }
            Record::Aborted { key } => {
                out.push(T_ABORTED);
                put_str(out, key);
            }
            Record::End { count } => {
                out.push(T_END);
                put_u64(out, *count);
            }
        }
        let payload = &out[start + FRAME_LEN..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    pub(super) fn decode(payload: &[u8]) -> std::result::Result<Record, String> {
        let mut r = Reader(payload);
        let t = r.u8()?;
        let rec = match t {
            T_META => Record::Meta { account: r.str()? },
            T_INTENT => Record::Intent(Intent {
                key: r.str()?,
                target: Target::Maildir {
                    dir: PathBuf::from(OsStr::from_bytes(r.bytes()?)),
                    name: r.str()?,
                },
            }),
            T_INTENT_MBOX => Record::Intent(Intent {
                key: r.str()?,
                target: Target::Mbox {
                    path: PathBuf::from(OsStr::from_bytes(r.bytes()?)),
                    offset: r.u64()?,
                    len: r.u64()?,
                    crc: u32::try_from(r.u64()?).map_err(|_| "bad checksum")?,
                },
            }),
            T_DELIVERED => Record::Delivered {
                key: r.str()?,
                entry: Entry {
                    name: r.str()?,
                    size: r.u64()?,
                    time: r.u64()?,
                    flags: if r.0.is_empty() {
                        String::new()
                    } else {
                        r.str()?
                    },
                },
            },
            T_FLAGS => Record::Flags {
                key: r.str()?,
                flags: r.str()?,
            },
            T_FOLDER => Record::Folder {
                name: r.str()?,
                state: FolderState {
                    uid_validity: u32::try_from(r.u64()?).map_err(|_| "bad UIDVALIDITY")?,
                    last_uid: u32::try_from(r.u64()?).map_err(|_| "bad UID")?,
                    mod_seq: r.u64()?,
                    local_stamp: if r.0.is_empty() { 0 } else { r.u64()? },
                },
            },
            T_REJECTED => Record::Rejected {
                key: r.str()?,
                rejection: Rejection {
                    time: r.u64()?,
                    reason: r.str()?,
                },
            },
            T_REMOVED => Record::Removed { key: r.str()? },
            T_ABORTED => Record::Aborted { key: r.str()? },
            T_END => Record::End { count: r.u64()? },
            other => return Err(format!("unknown record type {other}")),
        };
        if !r.0.is_empty() {
            return Err("trailing bytes in a record".into());
        }
        Ok(rec)
    }
}

fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn u8(&mut self) -> std::result::Result<u8, String> {
        let (&b, rest) = self.0.split_first().ok_or("record cut short")?;
        self.0 = rest;
        Ok(b)
    }
    fn u64(&mut self) -> std::result::Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("bad number in a record".into())
    }
    fn bytes(&mut self) -> std::result::Result<&[u8], String> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| "bad length")?;
        if n > self.0.len() {
            return Err("string runs past the record".into());
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(s)
    }
    fn str(&mut self) -> std::result::Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| "string is not UTF-8".into())
    }
}

pub(super) fn header(magic: &[u8; 8], generation: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(magic);
    h.extend_from_slice(&VERSION.to_le_bytes());
    h.extend_from_slice(&generation.to_le_bytes());
    h
}

/// Parse a header; `Ok(None)` when the file is shorter than a header and
/// could be a torn creation (a prefix of a valid header, or zeros).
pub(super) fn parse_header(
    bytes: &[u8],
    magic: &[u8; 8],
    what: &str,
) -> std::result::Result<Option<u64>, String> {
    if bytes.len() < HEADER_LEN {
        let valid_prefix = bytes.iter().zip(magic.iter()).all(|(a, b)| a == b);
        if bytes.iter().all(|&b| b == 0) || (bytes.len() <= 8 && valid_prefix) {
            return Ok(None);
        }
        return Err(format!("the {what} header is cut short"));
    }
    if &bytes[..8] != magic {
        return Err(format!("not a fetch {what} (bad magic bytes)"));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    if version > VERSION {
        return Err(format!(
            "the {what} was written by a newer version of fetch (format {version}, this one reads {VERSION})"
        ));
    }
    if version == 0 {
        return Err(format!("the {what} has an invalid format version 0"));
    }
    Ok(Some(u64::from_le_bytes(bytes[12..20].try_into().unwrap())))
}

/// Outcome of reading framed records from a byte slice.
pub(super) struct Scanned {
    /// Offset just past the last good record.
    pub good_len: usize,
    /// A torn tail was found after `good_len`.
    pub torn: bool,
}

/// Read the framed records from `start`, handing each to `each` in order
/// as it is decoded (no list of records is built: a 100,000-entry ledger
/// loads straight into its maps). An error from `each` stops the scan.
pub(super) fn parse_records(
    bytes: &[u8],
    start: usize,
    mut each: impl FnMut(Record) -> std::result::Result<(), String>,
) -> std::result::Result<Scanned, String> {
    let mut off = start;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.len() < FRAME_LEN {
            // A frame header cut short can only be a torn append.
            return Ok(Scanned {
                good_len: off,
                torn: true,
            });
        }
        let tail_is_zeros = || rest.iter().all(|&b| b == 0);
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap());
        let problem = if len == 0 || len > MAX_RECORD {
            Some(format!("bad record length {len}"))
        } else if FRAME_LEN + len > rest.len() {
            // Runs past the end of the file: a torn append.
            return Ok(Scanned {
                good_len: off,
                torn: true,
            });
        } else if crc32fast::hash(&rest[FRAME_LEN..FRAME_LEN + len]) != crc {
            Some("checksum mismatch".to_string())
        } else {
            match Record::decode(&rest[FRAME_LEN..FRAME_LEN + len]) {
                Ok(r) => {
                    each(r)?;
                    off += FRAME_LEN + len;
                    None
                }
                Err(e) => Some(e),
            }
        };
        if let Some(problem) = problem {
            let is_last = len > 0 && len <= MAX_RECORD && FRAME_LEN + len == rest.len();
            if tail_is_zeros() || is_last {
                return Ok(Scanned {
                    good_len: off,
                    torn: true,
                });
            }
            return Err(format!("{problem} at byte {off}"));
        }
    }
    Ok(Scanned {
        good_len: off,
        torn: false,
    })
}

/// Fuzzing entry: parse `data` as a journal and as a snapshot (must never
/// panic, whatever the bytes).
pub fn fuzz_parse(data: &[u8]) {
    let _ = parse_header(data, JOURNAL_MAGIC, "journal");
    if let Ok(p) = parse_records(data, 0, |_| Ok(())) {
        assert!(p.good_len <= data.len());
    }
    if data.len() > HEADER_LEN {
        let _ = parse_records(data, HEADER_LEN, |_| Ok(()));
    }
    // The checksum keeps nearly every mutated record away from the record
    // decoder, so feed it the bytes directly too. Whatever it accepts must
    // survive being written back and read again.
    if let Ok(rec) = Record::decode(data) {
        let mut framed = Vec::new();
        rec.encode(&mut framed);
        assert_eq!(Record::decode(&framed[FRAME_LEN..]).as_ref(), Ok(&rec));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            Record::Meta {
                account: "a".into(),
            },
            Record::Intent(Intent {
                key: "u:../x y".into(),
                target: Target::Maildir {
                    dir: PathBuf::from(OsStr::from_bytes(b"/m\xff")),
                    name: "n".into(),
                },
            }),
            Record::Intent(Intent {
                key: "u:2".into(),
                target: Target::Mbox {
                    path: "/var/mail/x".into(),
                    offset: 1 << 40,
                    len: 3,
                    crc: u32::MAX,
                },
            }),
            Record::Delivered {
                key: "k".into(),
                entry: Entry {
                    name: "n".into(),
                    size: u64::MAX,
                    time: 0,
                    flags: String::new(),
                },
            },
            Record::Delivered {
                key: "i:1:2:INBOX".into(),
                entry: Entry {
                    name: "m".into(),
                    size: 1,
                    time: 2,
                    flags: "\\Seen $Forwarded".into(),
                },
            },
            Record::Flags {
                key: "i:1:2:INBOX".into(),
                flags: "".into(),
            },
            Record::Folder {
                name: "Lists/ü".into(),
                state: FolderState {
                    uid_validity: u32::MAX,
                    last_uid: 7,
                    mod_seq: u64::MAX,
                    local_stamp: 3,
                },
            },
            Record::Rejected {
                key: "u:7".into(),
                rejection: Rejection {
                    time: 1_800_000_000,
                    reason: "550 5.7.1 spam: \u{fc}".into(),
                },
            },
            Record::Removed { key: "".into() },
            Record::Aborted { key: "n".into() },
            Record::End { count: 300 },
        ];
        let mut buf = Vec::new();
        for r in &recs {
            r.encode(&mut buf);
        }
        let mut read = Vec::new();
        let scanned = parse_records(&buf, 0, |r| {
            read.push(r);
            Ok(())
        })
        .unwrap();
        assert!(!scanned.torn);
        assert_eq!(scanned.good_len, buf.len());
        assert_eq!(read, recs);
    }
}
