//! Large IMAP messages, and the replies to pipelined FETCH commands. A
//! scripted server tests what Dovecot does only under load or never:
//! replies to pipelined commands out of order (Dovecot runs FETCHes in
//! parallel, and on a busy machine one command's data overtakes another's),
//! bodies longer or shorter than their announced RFC822.SIZE (an estimate
//! on some servers), and a body far longer than announced. The rule
//! everywhere: the Maildir holds whole messages only, each once.

mod common;

use common::Env;
use common::dest::{maildir_messages, tmp_files};
use common::imapserver::{Msg, Script, big, fetch, serve, small, stored};

const MIB: usize = 1 << 20;

/// Fetch everything `script` serves: exit 0, every message whole and
/// once, no tmp file; a second run then adds nothing.
fn arrives_exactly_once(script: Script) {
    let want = stored(&script.msgs);
    let port = serve(script);
    let env = Env::new();
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let got = maildir_messages(&env.maildir());
    assert!(
        got == want,
        "not every message arrived exactly: got sizes {:?}, want {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        want.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(tmp_files(&env.maildir()).is_empty());
    assert_eq!(fetch(&env, port, &[]).code, 0);
    assert_eq!(maildir_messages(&env.maildir()), want);
}

#[test]
fn large_messages_and_wrong_announced_sizes_arrive_exactly() {
    arrives_exactly_once(Script::new(vec![
        small(1),
        Msg::new(2, big(5 * MIB, 1)),
        small(3),
        Msg::announced_as(4, big(5 * MIB / 2, 2), 3 * MIB / 2),
        Msg::announced_as(5, big(3 * MIB, 3), 6 * MIB),
        small(6),
    ]));
}

#[test]
fn replies_to_pipelined_fetches_out_of_order_arrive_exactly() {
    // The large message has a FETCH of its own, so three commands are on
    // their way at once; the server answers the second before the first.
    arrives_exactly_once(Script {
        swap_first_two: true,
        ..Script::new(vec![small(1), Msg::new(2, big(5 * MIB, 4)), small(3)])
    });
}

#[test]
fn a_body_far_longer_than_announced_is_refused_and_nothing_is_half_written() {
    let port = serve(Script::new(vec![
        small(1),
        Msg::announced_as(2, big(4 * MIB, 9), MIB),
    ]));
    let env = Env::new();
    let out = fetch(&env, port, &[]);
    out.assert_exit(76, "announced 1048576 bytes and sends 4194304");
    // The small one was fetched in the same command; whether it was
    // delivered or not, nothing partial is left behind.
    let got = maildir_messages(&env.maildir());
    assert!(got.iter().all(|m| m.len() < 100), "no partial message");
    assert!(tmp_files(&env.maildir()).is_empty());
}
