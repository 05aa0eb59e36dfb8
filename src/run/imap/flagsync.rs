//! Flags in step both ways between the server and the Maildir. Per message
//! the ledger holds the flags both sides agreed on last time (the base); a
//! side that changed a flag since wins, and when both changed it the
//! addition wins (`imap::flags::merge`). Server changes come from
//! CHANGEDSINCE when the server has CONDSTORE (cost: what changed), else
//! from every message's flags; local changes from the file names.
//!
//! `AccountRun::plan_flags` gathers what both sides say and [`decide`]
//! (pure, no I/O) works out the changes; `AccountRun::apply_flags` carries
//! them out, or `--dry-run` reports them.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::{AccountRun, Opened, key, local, parse_key};
use crate::durable::sync_dir;
use crate::error::Result;
use crate::imap::flags::{self, Flags};
use crate::ledger::FolderState;
use crate::sanitize::escape;

/// One message whose flags a sync changes.
pub(super) struct FlagChange {
    pub(super) uid: u32,
    pub(super) key: String,
    /// The local file's new name, when its letters change.
    pub(super) rename: Option<(PathBuf, PathBuf)>,
    /// Flags to add and to remove on the server.
    pub(super) add: Flags,
    pub(super) remove: Flags,
    /// The new agreed flags for the ledger, when they changed.
    pub(super) base: Option<String>,
}

/// What a flag sync of one folder would do (`AccountRun::plan_flags`),
/// done by `AccountRun::apply_flags` or reported by `--dry-run`.
#[derive(Default)]
pub(super) struct FlagPlan {
    pub(super) changes: Vec<FlagChange>,
    /// Expunged on the server: (uid, key, local file if still here).
    pub(super) gone_on_server: Vec<(u32, String, Option<PathBuf>)>,
    /// `--sync-deletes`: deleted locally, to expunge on the server.
    pub(super) expunge_local_gone: Vec<(u32, String)>,
}

/// One of our messages in the folder, as the ledger knows it.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub uid: u32,
    pub key: String,
    /// The local file's name (without `:2,` flags).
    pub name: String,
    /// The flags both sides agreed on last time, as the ledger writes them.
    pub base: String,
}

/// What the two sides say now.
#[derive(Debug, Default)]
pub(super) struct Sides {
    /// Server flags of the messages that may have changed: with CONDSTORE
    /// those changed since the last sync, else every message's. A message
    /// not in it is as the base says.
    pub server: HashMap<u32, Flags>,
    /// The UIDs still on the server, when known (without CONDSTORE, or
    /// with `--sync-deletes`).
    pub existing: Option<HashSet<u32>>,
    /// The local files: base name -> (path, flag letters).
    pub local: HashMap<String, (PathBuf, String)>,
}

/// The changes a flag sync makes to `mine`, from what both sides say: the
/// three-way merge per message, and what became of messages gone from
/// one side. Local renames go into `dir`'s `cur/`. No I/O.
pub(super) fn decide(mine: Vec<Known>, sides: &Sides, sync_deletes: bool, dir: &Path) -> FlagPlan {
    let mut plan = FlagPlan::default();
    for Known {
        uid,
        key: k,
        name,
        base: base_s,
    } in mine
    {
        let base = flags::from_ledger(&base_s);
        let file = sides.local.get(name.as_str());
        if let Some(ex) = &sides.existing
            && !ex.contains(&uid)
        {
            plan.gone_on_server
                .push((uid, k, file.map(|(p, _)| p.clone())));
            continue;
        }
        let Some((path, letters)) = file else {
            if sync_deletes {
                plan.expunge_local_gone.push((uid, k));
            }
            continue;
        };
        let local_f = flags::flags_from_letters(letters);
        let server_f = sides
            .server
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| base.clone());
        let merged = flags::merge(&base, &local_f, &server_f);
        let (add, remove) = flags::diff(&server_f, &merged);
        // Other clients' letters (P, lower-case keywords) are kept.
        let rename =
            (flags::maildir_letters(&merged) != flags::maildir_letters(&local_f)).then(|| {
                let new_name =
                    flags::with_letters(&name, &flags::replace_letters(letters, &merged));
                (path.clone(), dir.join("cur").join(new_name))
            });
        let new_base = (merged != base).then(|| flags::to_ledger(&merged));
        if rename.is_some() || !add.is_empty() || !remove.is_empty() || new_base.is_some() {
            plan.changes.push(FlagChange {
                uid,
                key: k,
                rename,
                add,
                remove,
                base: new_base,
            });
        }
    }
    // In UID order: the order of a dry run's report, and of the STOREs.
    plan.changes.sort_by_key(|c| c.uid);
    plan
}

impl AccountRun<'_, '_, '_> {
    /// Work out what a flag sync of one folder would change, changing
    /// nothing: ask the server (only what changed, with CONDSTORE) and look at
    /// the Maildir (only where it changed), then [`decide`].
    pub(super) fn plan_flags(
        &mut self,
        f: &Opened,
        st: &FolderState,
        dir: &Path,
    ) -> Result<FlagPlan> {
        let (acct, ledger, session) = (self.acct, &*self.ledger, &mut *self.session);
        let (folder, sel, stamp_now) = (f.name, &f.sel, f.stamp_at_start);
        let uv = sel.uid_validity;
        if st.last_uid == 0 {
            return Ok(FlagPlan::default());
        }
        let local_unchanged = st.local_stamp != 0 && st.local_stamp == stamp_now;
        let incremental = session.condstore() && st.mod_seq > 0;
        let server_unchanged = incremental && sel.highest_mod_seq == Some(st.mod_seq);
        if local_unchanged && server_unchanged && !acct.imap.sync_deletes {
            return Ok(FlagPlan::default()); // O(1): nothing changed on either side
        }
        let mut sides = Sides::default();
        if !server_unchanged {
            sides.server = session
                .flags(st.last_uid, incremental.then_some(st.mod_seq))?
                .into_iter()
                .map(|(u, f)| (u, Flags::parse(f.iter().map(String::as_str))))
                .collect();
        }
        // Without CONDSTORE the listing is complete: a UID missing from it was
        // expunged on the server. With it, only --sync-deletes asks (one UID
        // SEARCH) which UIDs still exist.
        sides.existing = if !incremental {
            Some(sides.server.keys().copied().collect())
        } else if acct.imap.sync_deletes {
            Some(session.new_uids(0, None)?.into_iter().collect())
        } else {
            None
        };
        // The messages to look at: all of the folder's, or (nothing changed
        // locally, nothing to learn about deletions) just those the server
        // says changed.
        let mine: Vec<Known> = if local_unchanged && sides.existing.is_none() {
            sides
                .server
                .keys()
                .filter_map(|&uid| {
                    let k = key(uv, uid, folder);
                    let e = ledger.get(&k)?;
                    Some(Known {
                        uid,
                        key: k,
                        name: e.name.clone(),
                        base: e.flags.clone(),
                    })
                })
                .collect()
        } else {
            ledger
                .entries()
                .filter_map(|(k, e)| match parse_key(k) {
                    Some((v, uid, f)) if v == uv && f == folder => Some(Known {
                        uid,
                        key: k.clone(),
                        name: e.name.clone(),
                        base: e.flags.clone(),
                    }),
                    _ => None,
                })
                .collect()
        };
        if mine.is_empty() {
            return Ok(FlagPlan::default());
        }
        sides.local = if local_unchanged {
            local::locate(dir, &mine)?
        } else {
            local::scan_maildir(dir)?
        };
        Ok(decide(mine, &sides, acct.imap.sync_deletes, dir))
    }

    /// Carry out a [`FlagPlan`]. Order, so that a crash never reverts a user's
    /// change: rename local files (and fsync the directories), then UID STORE
    /// on the server, and only then record the new base in the ledger.
    pub(super) fn apply_flags(
        &mut self,
        folder: &str,
        dir: &Path,
        plan: FlagPlan,
    ) -> Result<(usize, bool)> {
        let (acct, ui) = (self.acct, self.ui);
        let (ledger, session) = (&mut *self.ledger, &mut *self.session);
        // 1. Local side.
        let mut renamed = false;
        for (from, to) in plan.changes.iter().filter_map(|c| c.rename.as_ref()) {
            crate::crash::point("before a flag rename");
            std::fs::rename(from, to).map_err(|e| {
                crate::error::local_io(format!("renaming {} to {}", from.display(), to.display()))
                    .because(e)
            })?;
            renamed = true;
        }
        if renamed {
            sync_dir(&dir.join("new"))?;
            sync_dir(&dir.join("cur"))?;
        }
        // 2. Server side, one STORE per distinct set of flags.
        let mut store_add: HashMap<String, Vec<u32>> = HashMap::new();
        let mut store_remove: HashMap<String, Vec<u32>> = HashMap::new();
        for c in &plan.changes {
            if !c.add.is_empty() {
                store_add.entry(c.add.imap_list()).or_default().push(c.uid);
            }
            if !c.remove.is_empty() {
                store_remove
                    .entry(c.remove.imap_list())
                    .or_default()
                    .push(c.uid);
            }
        }
        for (list, uids) in &store_add {
            session.store(uids, "+FLAGS.SILENT", list)?;
        }
        for (list, uids) in &store_remove {
            session.store(uids, "-FLAGS.SILENT", list)?;
        }
        // 3. The new base.
        let mut rebased = 0;
        for c in &plan.changes {
            if let Some(f) = &c.base {
                ledger.set_flags(&c.key, f);
                rebased += 1;
            }
        }
        // Deletions, only with --sync-deletes; otherwise a message gone on one
        // side stays on the other, and the ledger stops tracking server-gone ones.
        for (_, k, file) in &plan.gone_on_server {
            if acct.imap.sync_deletes
                && let Some(p) = file
            {
                std::fs::remove_file(p).map_err(|e| {
                    crate::error::local_io(format!("removing {}", p.display())).because(e)
                })?;
            }
            ledger.removed(k);
        }
        if !plan.expunge_local_gone.is_empty() {
            ledger.commit()?;
            let uids: Vec<u32> = plan.expunge_local_gone.iter().map(|(u, _)| *u).collect();
            session.store(&uids, "+FLAGS.SILENT", "(\\Deleted)")?;
            session.uid_expunge(&uids)?;
            for (_, k) in &plan.expunge_local_gone {
                ledger.removed(k);
            }
        }
        let changed = rebased + plan.gone_on_server.len() + plan.expunge_local_gone.len();
        if changed > 0 {
            ui.detail(
                &acct.name,
                &format!("{}: flags of {rebased} message(s) synced", escape(folder)),
            );
        }
        let touched = renamed || (acct.imap.sync_deletes && !plan.gone_on_server.is_empty());
        Ok((changed, touched))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One message of a table case: the base in the ledger, the local
    /// file's letters (None: the file is gone), the server's flags (None:
    /// unchanged since the base), whether the server still has it (None:
    /// not known).
    struct Case {
        what: &'static str,
        base: &'static str,
        local: Option<&'static str>,
        server: Option<&'static str>,
        exists: Option<bool>,
        sync_deletes: bool,
        want: Want,
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Nothing,
        Change {
            add: &'static str,
            remove: &'static str,
            /// The local file's new letters, if it is renamed.
            rename: Option<&'static str>,
            base: Option<&'static str>,
        },
        GoneOnServer {
            file_here: bool,
        },
        ExpungeOnServer,
    }

    fn run(c: &Case) -> FlagPlan {
        let dir = Path::new("/m");
        let mut sides = Sides::default();
        if let Some(s) = c.server {
            sides.server.insert(7, flags::from_ledger(s));
        }
        if let Some(e) = c.exists {
            sides.existing = Some(if e {
                HashSet::from([7])
            } else {
                HashSet::new()
            });
        }
        if let Some(l) = c.local {
            sides.local.insert(
                "m1".into(),
                (dir.join("cur").join(format!("m1:2,{l}")), l.into()),
            );
        }
        let mine = vec![Known {
            uid: 7,
            key: "i:1:7:INBOX".into(),
            name: "m1".into(),
            base: c.base.into(),
        }];
        decide(mine, &sides, c.sync_deletes, dir)
    }

    fn got(plan: &FlagPlan) -> Want {
        if let Some((uid, _, file)) = plan.gone_on_server.first() {
            assert_eq!(*uid, 7);
            return Want::GoneOnServer {
                file_here: file.is_some(),
            };
        }
        if !plan.expunge_local_gone.is_empty() {
            return Want::ExpungeOnServer;
        }
        let Some(c) = plan.changes.first() else {
            return Want::Nothing;
        };
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Want::Change {
            add: leak(c.add.imap_list()),
            remove: leak(c.remove.imap_list()),
            rename: c.rename.as_ref().map(|(_, to)| {
                let name = to.file_name().unwrap().to_str().unwrap();
                leak(flags::split_maildir_name(name).1.unwrap().to_string())
            }),
            base: c.base.clone().map(leak),
        }
    }

    #[test]
    fn decide_merges_both_sides_per_message() {
        use Want::*;
        let cases = [
            Case {
                what: "nothing changed",
                base: "\\Seen",
                local: Some("S"),
                server: None,
                exists: None,
                sync_deletes: false,
                want: Nothing,
            },
            Case {
                what: "read locally: the server learns \\Seen",
                base: "",
                local: Some("S"),
                server: None,
                exists: None,
                sync_deletes: false,
                want: Change {
                    add: "(\\Seen)",
                    remove: "()",
                    rename: None,
                    base: Some("\\Seen"),
                },
            },
            Case {
                what: "flagged on the server: the file is renamed",
                base: "\\Seen",
                local: Some("S"),
                server: Some("\\Seen \\Flagged"),
                exists: Some(true),
                sync_deletes: false,
                want: Change {
                    add: "()",
                    remove: "()",
                    rename: Some("FS"),
                    base: Some("\\Seen \\Flagged"),
                },
            },
            Case {
                what: "unread locally, flagged on the server: both kept",
                base: "\\Seen",
                local: Some(""),
                server: Some("\\Seen \\Flagged"),
                exists: None,
                sync_deletes: false,
                want: Change {
                    add: "()",
                    remove: "(\\Seen)",
                    rename: Some("F"),
                    base: Some("\\Flagged"),
                },
            },
            Case {
                what: "both set the same flag: only the base moves",
                base: "",
                local: Some("R"),
                server: Some("\\Answered"),
                exists: None,
                sync_deletes: false,
                want: Change {
                    add: "()",
                    remove: "()",
                    rename: None,
                    base: Some("\\Answered"),
                },
            },
            Case {
                what: "other clients' letters stay, keywords stay on the server",
                base: "\\Seen $Label1",
                local: Some("PSa"),
                server: Some("\\Seen \\Answered $Label1"),
                exists: None,
                sync_deletes: false,
                want: Change {
                    add: "()",
                    remove: "()",
                    rename: Some("PRSa"),
                    base: Some("\\Seen \\Answered $Label1"),
                },
            },
            Case {
                what: "expunged on the server, file still here",
                base: "\\Seen",
                local: Some("S"),
                server: None,
                exists: Some(false),
                sync_deletes: false,
                want: GoneOnServer { file_here: true },
            },
            Case {
                what: "expunged on the server and deleted here",
                base: "",
                local: None,
                server: None,
                exists: Some(false),
                sync_deletes: true,
                want: GoneOnServer { file_here: false },
            },
            Case {
                what: "deleted here, deletions not synced: left alone",
                base: "\\Seen",
                local: None,
                server: None,
                exists: Some(true),
                sync_deletes: false,
                want: Nothing,
            },
            Case {
                what: "deleted here with --sync-deletes: expunged there",
                base: "\\Seen",
                local: None,
                server: Some("\\Seen"),
                exists: Some(true),
                sync_deletes: true,
                want: ExpungeOnServer,
            },
        ];
        for c in &cases {
            assert_eq!(got(&run(c)), c.want, "{}", c.what);
        }
    }

    #[test]
    fn changes_come_in_uid_order() {
        let dir = Path::new("/m");
        let mut sides = Sides::default();
        let mut mine = Vec::new();
        for uid in [9, 3, 5] {
            let name = format!("m{uid}");
            sides
                .local
                .insert(name.clone(), (dir.join("new").join(&name), "S".into()));
            mine.push(Known {
                uid,
                key: format!("i:1:{uid}:INBOX"),
                name,
                base: String::new(),
            });
        }
        let plan = decide(mine, &sides, false, dir);
        let uids: Vec<u32> = plan.changes.iter().map(|c| c.uid).collect();
        assert_eq!(uids, [3, 5, 9]);
    }
}
