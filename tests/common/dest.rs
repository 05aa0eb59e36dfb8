//! Where a run delivers (the test's Maildir or mbox) and what a user finds
//! there afterwards: the messages, read back by an independent reader for
//! an mbox, and any temporary file left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::Env;
use super::mail::sorted;
use super::require::require;

/// A local destination in the test's directory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Dest {
    /// [`Env::maildir`].
    Maildir,
    /// [`Env::mbox`].
    Mbox,
}

impl Dest {
    /// The option that delivers there, and its path.
    pub fn args(self, env: &Env) -> Vec<String> {
        let (option, path) = match self {
            Dest::Maildir => ("--maildir", env.maildir()),
            Dest::Mbox => ("--mbox", env.mbox()),
        };
        vec![option.into(), path.to_string_lossy().into_owned()]
    }

    /// What the user has there, as a sorted multiset of messages (nothing
    /// before the first delivery). None when the mbox cannot be read back
    /// (python3 missing, see [`python_read_mbox`]).
    pub fn local(self, env: &Env) -> Option<Vec<Vec<u8>>> {
        match self {
            Dest::Maildir => Some(maildir_messages(&env.maildir())),
            Dest::Mbox => {
                let p = env.mbox();
                if !p.exists() {
                    return Some(Vec::new());
                }
                python_read_mbox(&p).map(|m| sorted(m.into_iter().map(|(_, d)| d).collect()))
            }
        }
    }
}

/// The message files in a Maildir's `new/` and `cur/`.
pub fn maildir_files(md: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for sub in ["new", "cur"] {
        if let Ok(rd) = std::fs::read_dir(md.join(sub)) {
            for e in rd.flatten() {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

/// The contents of every message in a Maildir, sorted (a multiset).
pub fn maildir_messages(md: &Path) -> Vec<Vec<u8>> {
    sorted(
        maildir_files(md)
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect(),
    )
}

/// Entries in a Maildir's `tmp/`.
pub fn tmp_files(md: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(md.join("tmp")) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// An mbox read back by Python's `mailbox` module (an independent reader),
/// with the mboxrd quoting undone: (From_ line, message bytes) in order.
/// None when python3 does not start and [`require`] lets the test go on.
pub fn python_read_mbox(path: &Path) -> Option<Vec<(String, Vec<u8>)>> {
    const SCRIPT: &str = r#"
import mailbox, re, struct, sys
out = sys.stdout.buffer
mb = mailbox.mbox(sys.argv[1], create=False)
for key in mb.iterkeys():
    data = re.sub(rb'(?m)^>(>*From )', rb'\1', mb.get_bytes(key))
    frm = mb.get_message(key).get_from().encode()
    for part in (frm, data):
        out.write(struct.pack('>Q', len(part)))
        out.write(part)
"#;
    let out = match Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            let why = format!("`python3` does not start to read the mbox back: {e}");
            require("python3", Some(why));
            return None;
        }
    };
    assert!(
        out.status.success(),
        "python could not read the mbox: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fn take(rest: &mut &[u8]) -> Vec<u8> {
        let (len, r) = rest.split_at(8);
        let len = u64::from_be_bytes(len.try_into().unwrap()) as usize;
        let (part, r) = r.split_at(len);
        *rest = r;
        part.to_vec()
    }
    let mut rest = &out.stdout[..];
    let mut msgs = Vec::new();
    while !rest.is_empty() {
        let from = String::from_utf8(take(&mut rest)).unwrap();
        let data = take(&mut rest);
        msgs.push((from, data));
    }
    Some(msgs)
}
