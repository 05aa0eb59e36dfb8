//! Which folders of an IMAP account a run fetches: INBOX, the ones named,
//! or every one the server lists but the special-use views and bins.

use std::collections::HashMap;

use crate::config::Account;
use crate::error::Result;
use crate::imap::{Session, names};

/// The folders to fetch, with their hierarchy delimiters.
/// Folder names as the user writes them (UTF-8) are sent to the server in
/// modified UTF-7 (RFC 3501 §5.1.3); names from LIST are already.
pub(crate) fn choose_folders(
    acct: &Account,
    session: &mut Session,
) -> Result<Vec<(String, Option<char>)>> {
    let wanted: Vec<String> = acct
        .imap
        .folders
        .iter()
        .map(|f| names::encode_mutf7(f))
        .collect();
    let wanted = &wanted;
    if !acct.imap.all_folders
        && (wanted.is_empty() || wanted.iter().all(|f| f.eq_ignore_ascii_case("INBOX")))
    {
        return Ok(vec![("INBOX".to_string(), None)]);
    }
    let listed = session.list()?;
    if acct.imap.all_folders {
        return Ok(listed
            .into_iter()
            .filter(|f| f.selectable)
            // RFC 6154: \All and \Flagged show messages that live in other
            // folders too (Gmail's All Mail and Starred); \Junk and \Trash
            // are rarely wanted. Fetched only when named with --folder.
            .filter(|f| f.special.is_none() || wanted.contains(&f.name))
            .filter(|f| {
                acct.imap
                    .move_to
                    .as_deref()
                    .map(names::encode_mutf7)
                    .as_deref()
                    != Some(f.name.as_str())
            })
            .map(|f| (f.name, f.delimiter))
            .collect());
    }
    let delims: HashMap<&str, Option<char>> = listed
        .iter()
        .map(|f| (f.name.as_str(), f.delimiter))
        .collect();
    let default_delim = listed.iter().find_map(|f| f.delimiter);
    Ok(wanted
        .iter()
        .map(|w| {
            let d = delims.get(w.as_str()).copied().unwrap_or(default_delim);
            (w.clone(), d)
        })
        .collect())
}
