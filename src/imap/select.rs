//! Opening a folder: SELECT or EXAMINE, pipelined with the session's
//! ENABLE when it is still to come and with the new mail's metadata, so
//! that a sync's first body is asked for after one round trip less per
//! command (RFC 3501 section 5.5). The commands go ahead of the `imap`
//! crate (`SharedConn::send_ahead`), which then reads each reply in turn
//! with its own parser.

use super::session::{ENABLE, META_QUERY, Meta, SMALL_REPLY, Selected, Session, lib_error};
use crate::error::{Kind, Result, config, protocol};
use crate::sanitize::escape;

/// What the `imap` crate sends for a quoted string argument.
fn lib_quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl Session<'_> {
    /// SELECT `folder`, or with `read_only` EXAMINE it (nothing can change:
    /// not even the \\Recent flags other clients see).
    pub fn select(&mut self, folder: &str, read_only: bool) -> Result<Selected> {
        Ok(self.select_ahead(folder, read_only, None)?.0)
    }

    /// [`Session::select`], in one round trip with what goes before and
    /// after it (RFC 3501 section 5.5: commands that do not depend on each
    /// other's results may be pipelined): the session's ENABLE if it is
    /// still to come, and with `prefetch = Some((after, count))` the
    /// metadata of UIDs `after+1` to `after+count`, whose result is
    /// returned too. That FETCH is sent before UIDVALIDITY is known, so
    /// the caller may use its result only if `after` was right for the
    /// UIDVALIDITY the SELECT reported; it changes nothing on the server
    /// (no body is asked for, so no \\Seen is set), and its reply is read
    /// to its end whatever happens, so that the connection stays in step.
    /// ENABLE goes first when the folder's name on the wire depends on
    /// whether UTF8=ACCEPT is enabled (anything but ASCII without `&`).
    pub fn select_ahead(
        &mut self,
        folder: &str,
        read_only: bool,
        prefetch: Option<(u32, u32)>,
    ) -> Result<(Selected, Option<Vec<Meta>>)> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        if !self.enabled && (!folder.is_ascii() || folder.contains('&')) {
            self.enable()?;
        }
        let wire = self.wire_name(folder);
        if wire.contains(['\r', '\n']) {
            return Err(config("invalid command").context(format!("{verb} {}", escape(folder))));
        }
        let enable = !self.enabled;
        let set = prefetch.map(|(after, count)| {
            format!(
                "{}:{}",
                after.saturating_add(1),
                after.saturating_add(count.max(1))
            )
        });
        // The library's next tags, in the order it will send them.
        let mut tag = self.raw.last_tag();
        let mut ahead = String::new();
        let mut add = |cmd: &str| {
            tag += 1;
            ahead.push_str(&format!("a{tag} {cmd}\r\n"));
        };
        if enable {
            add(ENABLE);
        }
        add(&format!("{verb} {}", lib_quoted(&wire)));
        if let Some(set) = &set {
            add(&format!("UID FETCH {set} {META_QUERY}"));
        }
        self.raw.send_ahead(ahead.as_bytes())?;
        if enable {
            self.enable()?;
        }
        let selected = self.select_sent(folder, &wire, read_only);
        let metas = match (&set, prefetch) {
            (Some(set), Some((after, count))) => {
                let mut out = Vec::new();
                match self.fetch_meta(set, u64::from(count), |uid| uid > after, &mut out) {
                    Ok(()) => {
                        out.sort_by_key(|m| m.uid);
                        out.dedup_by_key(|m| m.uid);
                        Some(out)
                    }
                    // Refused (as after a failed SELECT): read, and unused.
                    Err(e) if e.kind == Kind::Protocol && selected.is_err() => None,
                    Err(e) => return Err(e),
                }
            }
            _ => None,
        };
        debug_assert_eq!(self.raw.ahead(), 0, "a command sent ahead was not read");
        Ok((selected?, metas))
    }

    /// Read the reply to a SELECT or EXAMINE sent ahead (the library sends
    /// it again, which [`SharedConn`] drops).
    fn select_sent(&mut self, folder: &str, wire: &str, read_only: bool) -> Result<Selected> {
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.begin(&format!("{verb} {}", escape(wire)), SMALL_REPLY);
        let mb = if read_only {
            self.inner.examine(wire)
        } else {
            self.inner.select(wire)
        }
        .map_err(|e| {
            let refused = matches!(e, imap::Error::No(_));
            let mut err = lib_error(&format!("{verb} {}", escape(folder)), e);
            if refused {
                // This folder's problem (gone, no right to read it): the
                // connection is fine and the other folders go on.
                err.kind = Kind::Unavailable;
            }
            err
        })?;
        self.drain();
        let uid_validity = match mb.uid_validity {
            Some(0) | None => {
                return Err(protocol(format!(
                    "folder {} has no valid UIDVALIDITY",
                    escape(folder)
                )));
            }
            Some(v) => v,
        };
        Ok(Selected {
            uid_validity,
            uid_next: mb.uid_next,
            highest_mod_seq: mb.highest_mod_seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_as_the_library_quotes() {
        assert_eq!(lib_quoted("INBOX"), "\"INBOX\"");
        assert_eq!(lib_quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
