//! Paths as users write them in the config file and on the command line:
//! `~` and `$VARS` expanded, made absolute.

use std::path::PathBuf;

use crate::error::{Result, config};

/// Expand a leading `~` and `$VAR` / `${VAR}` in a path, and make it
/// absolute. An unset variable is an error (a silent empty string would
/// deliver mail somewhere unexpected).
pub fn expand_path(raw: &str) -> Result<PathBuf> {
    let mut out = String::with_capacity(raw.len());
    let rest = if raw == "~" || raw.starts_with("~/") {
        let home = dirs::home_dir()
            .ok_or_else(|| config(format!("cannot expand ~ in {raw:?}: no home directory")))?;
        out.push_str(&home.to_string_lossy());
        &raw[1..]
    } else {
        raw
    };
    let mut chars = rest.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let tail = &rest[i + 1..];
        let (name, used) = if let Some(inner) = tail.strip_prefix('{') {
            let end = inner
                .find('}')
                .ok_or_else(|| config(format!("unclosed ${{ in {raw:?}")))?;
            (&inner[..end], end + 2)
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            continue;
        }
        let value = std::env::var(name)
            .map_err(|_| config(format!("{raw:?} uses ${name}, which is not set")))?;
        out.push_str(&value);
        for _ in 0..used {
            chars.next();
        }
    }
    if out.is_empty() {
        return Err(config("an empty path"));
    }
    std::path::absolute(&out).map_err(|e| config(format!("bad path {out:?}")).because(e))
}
