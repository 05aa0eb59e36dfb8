//! Round trips over a slow link: the commands that open a folder (ENABLE,
//! SELECT and the new mail's metadata) go in one write, before any reply
//! (RFC 3501 section 5.5), and the metadata asked for before UIDVALIDITY
//! was known is never used when UIDVALIDITY changed.

mod common;

use common::Env;
use common::dest::maildir_messages;
use common::imapserver::{Script, fetch, serve, small, stored};

fn three() -> Vec<common::imapserver::Msg> {
    (1..=3).map(small).collect()
}

#[test]
fn enable_select_and_the_metadata_go_in_one_round_trip() {
    let script = Script::new(three());
    let log = script.log.clone();
    let port = serve(script);
    let env = Env::new();
    fetch(&env, port, &[]).assert_exit(0, "");
    assert_eq!(maildir_messages(&env.maildir()), stored(&three()));
    let log = log.lock().unwrap().clone();
    let at = |what: &str| {
        log.iter()
            .position(|c| c.trim_start_matches('+').starts_with(what))
            .unwrap_or_else(|| panic!("no {what} in {log:?}"))
    };
    let (enable, select, meta) = (
        at("ENABLE"),
        at("SELECT"),
        at("UID FETCH 1:5000 (UID RFC822.SIZE"),
    );
    assert_eq!((select, meta), (enable + 1, enable + 2), "{log:?}");
    // ENABLE and SELECT each had the next command right behind them.
    assert!(log[enable].starts_with('+'), "{log:?}");
    assert!(log[select].starts_with('+'), "{log:?}");
    // Nothing asked for the metadata again.
    assert_eq!(
        log.iter().filter(|c| c.contains("RFC822.SIZE")).count(),
        1,
        "{log:?}"
    );
}

#[test]
fn metadata_fetched_ahead_of_a_changed_uidvalidity_is_never_used() {
    // The first run knows UIDs 1-3 under UIDVALIDITY 1; from the second
    // connection on, the folder is renumbered (UIDVALIDITY 2) and has a
    // UID 4 that the metadata asked for ahead finds.
    let env = Env::new();
    let mut first = Script::new(three());
    first.uid_validity = Some(1);
    let mut msgs = three();
    msgs.push(small(4));
    let mut second = Script::new(msgs);
    second.uid_validity = Some(2);
    let log = second.log.clone();
    first.then = Some(std::sync::Arc::new(second));
    let port = serve(first);
    fetch(&env, port, &[]).assert_exit(0, "");
    let before = maildir_messages(&env.maildir());
    assert_eq!(before.len(), 3);

    let out = fetch(&env, port, &[]);
    out.assert_exit(65, "UIDVALIDITY changed");
    let log = log.lock().unwrap().clone();
    assert!(
        log.iter()
            .any(|c| c.contains("UID FETCH 4:5003 (UID RFC822.SIZE")),
        "the metadata went ahead: {log:?}"
    );
    assert!(
        !log.iter().any(|c| c.contains("BODY")),
        "no body asked for: {log:?}"
    );
    assert_eq!(
        maildir_messages(&env.maildir()),
        before,
        "nothing delivered"
    );
    // Nothing recorded either: the same again says the same.
    fetch(&env, port, &[]).assert_exit(65, "UIDVALIDITY changed");
    assert_eq!(maildir_messages(&env.maildir()), before);
}
