//! What `--dry-run` says about a folder: one line (or JSON event) per
//! thing a run would do.

use super::flagsync::FlagPlan;
use super::{AccountRun, Opened, parse_key};
use crate::imap::Meta;
use crate::report::Action;
use crate::sanitize::escape;

impl AccountRun<'_, '_, '_> {
    /// `--dry-run`: what a run would do in the folder: fetch `metas`, delete
    /// or move what it fetched and what an earlier run left, and `flag_plan`.
    pub(super) fn report_dry_run(&mut self, f: &Opened, metas: &[Meta], flag_plan: &FlagPlan) {
        let (acct, ui, ledger, summary) = (self.acct, self.ui, &*self.ledger, &mut self.summary);
        let (folder, uv) = (f.name, f.uv());
        let name = &acct.name;
        let shown = &f.shown;
        let f = Some(shown.as_str());
        let label = |uid: u32| format!("{} UID {uid}", escape(shown));
        let action = match acct.imap.move_to {
            Some(_) => Action::WouldMove,
            None => Action::WouldDelete,
        };
        let verb = |what: &str| match &acct.imap.move_to {
            Some(t) => format!("move {what} to {}", escape(t)),
            None => format!("delete {what} from the server"),
        };
        for m in metas {
            let uid = m.uid.to_string();
            let then = if acct.deletes() {
                format!(", then {}", verb("it"))
            } else {
                String::new()
            };
            let what = format!("would fetch {}, {} bytes{then}", label(m.uid), m.size);
            ui.would(name, f, Some(&uid), m.size, Action::WouldFetch, &what);
            if acct.deletes() {
                ui.would(name, f, Some(&uid), m.size, action, "");
                summary.would_delete += 1;
            }
        }
        if acct.deletes() {
            // Committed by an earlier run that did not get to delete them.
            for (k, e) in ledger.entries() {
                if let Some((v, uid, fo)) = parse_key(k)
                    && v == uv
                    && fo == folder
                {
                    let what = format!("would {} (delivered by an earlier run)", verb(&label(uid)));
                    ui.would(name, f, Some(&uid.to_string()), e.size, action, &what);
                    summary.would_delete += 1;
                }
            }
        }
        for c in &flag_plan.changes {
            let mut parts = Vec::new();
            if !c.add.is_empty() {
                parts.push(format!("add {} on the server", c.add.imap_list()));
            }
            if !c.remove.is_empty() {
                parts.push(format!("remove {} on the server", c.remove.imap_list()));
            }
            if let Some((_, to)) = &c.rename {
                parts.push(format!("rename the local file to {}", to.display()));
            }
            if parts.is_empty() {
                parts.push("record that both sides agree".into());
            }
            let what = format!(
                "would sync the flags of {}: {}",
                label(c.uid),
                parts.join(", ")
            );
            ui.would(
                name,
                f,
                Some(&c.uid.to_string()),
                0,
                Action::WouldFlag,
                &what,
            );
            summary.would_flag += 1;
        }
        if acct.imap.sync_deletes {
            for (uid, _, file) in &flag_plan.gone_on_server {
                if let Some(p) = file {
                    let what = format!("would remove {} (expunged on the server)", p.display());
                    ui.would(
                        name,
                        f,
                        Some(&uid.to_string()),
                        0,
                        Action::WouldRemoveLocal,
                        &what,
                    );
                }
            }
        }
        for (uid, _) in &flag_plan.expunge_local_gone {
            let what = format!(
                "would delete {} from the server (its local copy was deleted)",
                label(*uid)
            );
            ui.would(
                name,
                f,
                Some(&uid.to_string()),
                0,
                Action::WouldDelete,
                &what,
            );
            summary.would_delete += 1;
        }
    }
}
