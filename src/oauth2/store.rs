//! The token store: one file in the account's state directory holding the
//! refresh token and the current access token with its expiry, mode 0600,
//! replaced whole and durably (a temporary file written and fsynced, then
//! renamed over the old one, then the directory fsynced). A crash at any
//! moment leaves the old file or the new one, whole: so a rotated refresh
//! token is on disk before the old one is dropped. A lock file keeps two
//! processes (a cron run and a daemon, say) from refreshing at once.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::durable::sync_dir;
use crate::error::{Context, Kind, Result, config, data, temporary};
use crate::platform::open_nofollow;

pub const FILE: &str = "oauth2-tokens.json";
const LOCK: &str = "oauth2.lock";

/// What the store holds. The token strings are wiped from memory on drop.
#[derive(Default, Serialize, Deserialize)]
pub struct Tokens {
    /// Which client and endpoint these tokens belong to: tokens for another
    /// client are not offered to this one.
    pub client_id: String,
    pub token_url: String,
    pub refresh_token: Option<String>,
    pub access_token: Option<String>,
    /// When the access token expires (seconds since the epoch).
    pub expires_at: Option<u64>,
}

impl Drop for Tokens {
    fn drop(&mut self) {
        for s in [&mut self.refresh_token, &mut self.access_token]
            .into_iter()
            .flatten()
        {
            // SAFETY: zero bytes are valid UTF-8; the string is dropped next.
            unsafe { s.as_bytes_mut() }.fill(0);
        }
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tokens([REDACTED])")
    }
}

/// The stored tokens of the account whose state directory is `dir`, if any.
/// A store that others can read is refused: it holds a credential.
pub fn load(dir: &Path) -> Result<Option<Tokens>> {
    let path = dir.join(FILE);
    let f = match open_nofollow(&path, OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(crate::error::local_io(format!("opening {}", path.display())).because(e));
        }
    };
    let meta = f
        .metadata()
        .ctx(Kind::LocalIo, || format!("reading {}", path.display()))?;
    if meta.mode() & 0o077 != 0 || meta.uid() != crate::platform::uid() {
        return Err(config(format!(
            "{} holds an OAuth refresh token but can be read by others or is not yours; \
             chmod 600 it (and check who else could have read it)",
            path.display()
        )));
    }
    if meta.len() > 1 << 20 {
        return Err(data(format!(
            "{} is too large to be a token store",
            path.display()
        )));
    }
    let text = fs::read(&path).ctx(Kind::LocalIo, || format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        data(format!(
            "{} is damaged ({e}); run `fetch --login` for this account again",
            path.display()
        ))
    })
}

/// Replace the store durably with `t` (see the module documentation).
pub fn save(dir: &Path, t: &Tokens) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(Kind::LocalIo, || format!("creating {}", dir.display()))?;
    let bytes = serde_json::to_vec_pretty(t).expect("tokens serialise");
    let tmp = dir.join(format!("{FILE}.new"));
    let _ = fs::remove_file(&tmp);
    let mut f = open_nofollow(
        &tmp,
        OpenOptions::new().write(true).create_new(true).mode(0o600),
    )
    .ctx(Kind::LocalIo, || format!("creating {}", tmp.display()))?;
    let written = f.write_all(&bytes).and_then(|_| f.sync_all());
    let mut bytes = bytes;
    bytes.fill(0);
    written.ctx(Kind::LocalIo, || format!("writing {}", tmp.display()))?;
    drop(f);
    crate::crash::point("oauth2 tokens written, not yet renamed");
    fs::rename(&tmp, dir.join(FILE))
        .ctx(Kind::LocalIo, || format!("renaming {}", tmp.display()))?;
    crate::crash::point("oauth2 tokens renamed, directory not yet synced");
    sync_dir(dir)
}

/// Hold the account's token lock (waiting up to `wait` for another
/// process's refresh to finish) until the returned file is dropped.
pub fn lock(dir: &Path, wait: Duration) -> Result<File> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ctx(Kind::LocalIo, || format!("creating {}", dir.display()))?;
    let path = dir.join(LOCK);
    let f = open_nofollow(
        &path,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .mode(0o600),
    )
    .ctx(Kind::LocalIo, || format!("opening {}", path.display()))?;
    let until = Instant::now() + wait;
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(fs::TryLockError::WouldBlock) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(fs::TryLockError::WouldBlock) => {
                return Err(temporary(format!(
                    "another fetch is refreshing this account's OAuth token (lock {} held)",
                    path.display()
                )));
            }
            Err(fs::TryLockError::Error(e)) => {
                return Err(
                    crate::error::local_io(format!("locking {}", path.display())).because(e),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_tokens_load_back_private() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("acct");
        assert!(load(&dir).unwrap().is_none());
        let t = Tokens {
            client_id: "c".into(),
            token_url: "u".into(),
            refresh_token: Some("rt".into()),
            access_token: Some("at".into()),
            expires_at: Some(5),
        };
        save(&dir, &t).unwrap();
        let back = load(&dir).unwrap().unwrap();
        assert_eq!(back.refresh_token.as_deref(), Some("rt"));
        assert_eq!(back.expires_at, Some(5));
        let mode = fs::metadata(dir.join(FILE)).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!dir.join(format!("{FILE}.new")).exists());
        assert!(!format!("{back:?}").contains("rt"));
        // Readable by others: refused.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir.join(FILE), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load(&dir).unwrap_err().kind, Kind::Config);
        fs::set_permissions(dir.join(FILE), fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(dir.join(FILE), b"{not json").unwrap();
        assert_eq!(load(&dir).unwrap_err().kind, Kind::Data);
    }

    #[test]
    fn the_lock_is_exclusive_and_waits_a_bounded_time() {
        let d = tempfile::tempdir().unwrap();
        let held = lock(d.path(), Duration::ZERO).unwrap();
        let e = lock(d.path(), Duration::from_millis(120)).unwrap_err();
        assert_eq!(e.kind, Kind::Temporary);
        drop(held);
        lock(d.path(), Duration::ZERO).unwrap();
    }
}
