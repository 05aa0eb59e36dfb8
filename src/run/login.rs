//! `fetch --login`: authorize each chosen account's OAuth client, one
//! account after another (one browser at a time), and say where the tokens
//! went. The URL to open goes to stderr on a line of its own (and, with
//! `--json`, as an `authorize` event), so that it can be copied from an ssh
//! session; on a terminal the browser is also opened when we can.

use std::io::IsTerminal;

use crate::config::Account;
use crate::error::{self, Error, config};
use crate::oauth2::flow::{self, Prompt};
use crate::report::Ui;
use crate::report::events::{AuthorizeEvent, ErrorEvent, Event};

/// Authorize every account in `accounts`; the combined exit status.
pub fn all(accounts: &[Account], ui: &Ui) -> i32 {
    let mut codes = Vec::with_capacity(accounts.len());
    // `fetch --login` with a config of OAuth and password accounts: the
    // password accounts have nothing to authorize.
    let any_oauth = accounts.iter().any(|a| a.oauth2.is_some());
    for acct in accounts {
        if crate::signals::stop_requested() {
            break;
        }
        if any_oauth && acct.oauth2.is_none() {
            ui.info(&acct.name, "no OAuth client: nothing to authorize");
            continue;
        }
        let code = match one(acct, ui) {
            Ok(dir) => {
                ui.info(
                    &acct.name,
                    &format!("authorized; tokens kept in {}", dir.display()),
                );
                0
            }
            Err(e) => {
                let msg = e.to_string();
                ui.error(&acct.name, &msg);
                ui.event(&Event::Error(ErrorEvent {
                    account: &acct.name,
                    kind: e.kind.name(),
                    message: &msg,
                }));
                e.kind.exit_code()
            }
        };
        codes.push(code);
    }
    error::combine(&codes)
}

fn one(acct: &Account, ui: &Ui) -> Result<std::path::PathBuf, Error> {
    let Some(client) = &acct.oauth2 else {
        return Err(config(
            "this account has no OAuth client to authorize: set oauth2_client_id (and \
             provider = ..., or the oauth2_* endpoints) in its config",
        ));
    };
    let dir = acct
        .state_dir()
        .ok_or_else(|| config("cannot find a state directory: set XDG_STATE_HOME or HOME"))?;
    let show = |p: &Prompt| {
        let (url, code) = match p {
            Prompt::Browser { url } => {
                eprintln!(
                    "{}: open this URL in a browser and allow access:",
                    acct.name
                );
                (*url, None)
            }
            Prompt::Device {
                uri,
                code,
                complete,
            } => {
                eprintln!(
                    "{}: open this URL in a browser and enter the code {code}:",
                    acct.name
                );
                (complete.unwrap_or(uri), Some(*code))
            }
        };
        eprintln!("{url}");
        ui.event(&Event::Authorize(AuthorizeEvent {
            account: &acct.name,
            url,
            user_code: code,
        }));
        if std::io::stderr().is_terminal() && std::env::var_os("FETCH_NO_BROWSER").is_none() {
            open_browser(url);
        }
    };
    flow::login(client, &dir, acct.timeout, &show)?;
    Ok(dir)
}

/// Try the desktop's opener; silence and failure are fine (the URL is
/// printed anyway).
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let _ = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}
