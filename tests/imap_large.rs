//! Large IMAP messages, and the replies to pipelined FETCH commands. A
//! scripted server tests what Dovecot does only under load or never:
//! replies to pipelined commands out of order (Dovecot runs FETCHes in
//! parallel, and on a busy machine one command's data overtakes another's),
//! bodies longer or shorter than their announced RFC822.SIZE (an estimate
//! on some servers), and a body far longer than announced. The rule
//! everywhere: the Maildir holds whole messages only, each once.

mod common;

use common::imapserver::{Msg, Script, big, fetch, lf, serve, small};
use common::{Env, maildir_messages};

const MIB: usize = 1 << 20;

/// Every message sorted, as the Maildir should hold them.
fn want(msgs: &[Msg]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = msgs.iter().map(|m| lf(&m.body)).collect();
    v.sort();
    v
}

fn assert_holds(env: &Env, want: &[Vec<u8>]) {
    let got = maildir_messages(&env.maildir());
    assert!(
        got == want,
        "not every message arrived exactly: got sizes {:?}, want {:?}",
        got.iter().map(Vec::len).collect::<Vec<_>>(),
        want.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert!(common::tmp_files(&env.maildir()).is_empty());
}

#[test]
fn large_messages_and_wrong_announced_sizes_arrive_exactly() {
    let large = big(5 * MIB, 1);
    let longer = big(5 * MIB / 2, 2); // announced as 1.5 MiB
    let shorter = big(3 * MIB, 3); // announced as 6 MiB
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: large.len(),
            body: large,
        },
        small(3),
        Msg {
            uid: 4,
            announced: 3 * MIB / 2,
            body: longer,
        },
        Msg {
            uid: 5,
            announced: 6 * MIB,
            body: shorter,
        },
        small(6),
    ];
    let want = want(&msgs);
    let port = serve(Script::new(msgs));
    let env = Env::new();
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_holds(&env, &want);
    // Nothing more next time.
    assert_eq!(fetch(&env, port, &[]).code, 0);
    assert_eq!(maildir_messages(&env.maildir()).len(), 6);
}

#[test]
fn replies_to_pipelined_fetches_out_of_order_arrive_exactly() {
    // The large message has a FETCH of its own, so three commands are on
    // their way at once; the server answers the second before the first.
    let large = big(5 * MIB, 4);
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: large.len(),
            body: large,
        },
        small(3),
    ];
    let want = want(&msgs);
    let port = serve(Script {
        swap_first_two: true,
        ..Script::new(msgs)
    });
    let env = Env::new();
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_holds(&env, &want);
    assert_eq!(fetch(&env, port, &[]).code, 0);
    assert_eq!(maildir_messages(&env.maildir()).len(), 3);
}

#[test]
fn a_body_far_longer_than_announced_is_refused_and_nothing_is_half_written() {
    let body = big(4 * MIB, 9);
    let msgs = vec![
        small(1),
        Msg {
            uid: 2,
            announced: MIB,
            body,
        },
    ];
    let port = serve(Script::new(msgs));
    let env = Env::new();
    let out = fetch(&env, port, &[]);
    assert_eq!(out.code, 76, "{out:?}");
    assert!(
        out.stderr
            .contains("announced 1048576 bytes and sends 4194304"),
        "{}",
        out.stderr
    );
    // The small one was fetched in the same command; whether it was
    // delivered or not, nothing partial is left behind.
    let got = maildir_messages(&env.maildir());
    assert!(got.iter().all(|m| m.len() < 100), "no partial message");
    assert!(common::tmp_files(&env.maildir()).is_empty());
}
