//! `--shard K/N`: which of the config file's accounts this machine runs,
//! so that N machines can split one config file with nothing to
//! coordinate them.
//!
//! An account belongs to a shard by its identity, the string that also
//! names its state directory ([`Account::ledger_id`]: protocol, user,
//! server), never by its name or its place in the file. So renaming an
//! account or reordering the file moves nothing; two entries for the same
//! mailbox (say, two IMAP folders) always land on the same machine, which
//! holds that mailbox's one ledger; and adding an account moves no other.
//!
//! The function is pinned (unit tests hold test vectors), because every
//! machine, of every version and platform, must agree on it: the key is the
//! first 8 bytes of SHA-256 of the identity (big-endian), and the shard is
//! Lamping and Veach's jump consistent hash of that key into N buckets ("A
//! Fast, Minimal Memory, Consistent Hash Algorithm", 2014). Jump hash also
//! keeps resharding small: going from N to N+1 shards moves only the
//! accounts that go to the new shard N, about one in N+1.

use sha2::{Digest, Sha256};

use super::Account;
use crate::error::{Result, usage};

/// Shard `index` of `count`: numbered from 0, as a Kubernetes indexed Job
/// numbers its pods (`JOB_COMPLETION_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// The most shards: far beyond any fleet, and small enough that the count
/// of accounts to shards never overflows anything.
const MAX_SHARDS: u32 = 1 << 16;

impl Shard {
    /// `K/N` as given to `--shard` (or `FETCH_SHARD`).
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = |why: &str| {
            usage(format!(
                "--shard {text:?}: {why} (give K/N: shard K of N, numbered from 0, e.g. 0/3, \
                 1/3 and 2/3 on three machines)"
            ))
        };
        let (k, n) = text.trim().split_once('/').ok_or_else(|| bad("no \"/\""))?;
        let number = |s: &str| {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse::<u32>().ok()
        };
        let index = number(k).ok_or_else(|| bad("K is not a number"))?;
        let count = number(n).ok_or_else(|| bad("N is not a number"))?;
        if count == 0 || count > MAX_SHARDS {
            return Err(bad(&format!("N must be 1 to {MAX_SHARDS}")));
        }
        if index >= count {
            return Err(bad(&format!(
                "K must be below N: shards are numbered 0 to {}",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }

    /// Whether this shard runs `acct`.
    pub fn holds(&self, acct: &Account) -> bool {
        shard_of(&acct.ledger_id(), self.count) == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard (0 to `count` - 1) of the account whose identity is
/// `identity`.
pub fn shard_of(identity: &str, count: u32) -> u32 {
    let digest = Sha256::digest(identity.as_bytes());
    let mut key = [0u8; 8];
    key.copy_from_slice(&digest[..8]);
    jump(u64::from_be_bytes(key), count)
}

/// Jump consistent hash: `key` into one of `buckets` buckets. The
/// arithmetic is the paper's, including its one floating-point step, whose
/// IEEE 754 result is the same on every platform Rust builds for.
fn jump(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (0i64, 0i64);
    // j grows by at least 1 each turn (the divisor is at most 2^31), so
    // this ends within `buckets` turns, usually within ln(buckets).
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2862933555777941757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

/// Keep the accounts of `shard`; returns how many there were.
pub(super) fn select(accounts: &mut Vec<Account>, shard: Shard) -> usize {
    let total = accounts.len();
    accounts.retain(|a| shard.holds(a));
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jump_matches_the_published_vectors() {
        // The vectors other implementations of the paper test against.
        assert_eq!(jump(1, 1), 0);
        assert_eq!(jump(42, 57), 43);
        assert_eq!(jump(0xDEAD10CC, 1), 0);
        assert_eq!(jump(0xDEAD10CC, 666), 361);
        assert_eq!(jump(256, 1024), 520);
    }

    #[test]
    fn shard_of_is_pinned() {
        // Machines of different versions must agree: these may never
        // change. (The values were checked against a separate computation:
        // Python's hashlib.sha256 and the paper's loop.)
        let ids = [
            "pop3:alice@pop.example.org",
            "imap:bob@imap.example.com",
            "imap:carol@mail.example.net",
            "pop3:dave@pop.example.org",
        ];
        let got: Vec<u32> = ids.iter().map(|id| shard_of(id, 3)).collect();
        assert_eq!(got, PINNED_3);
        let got: Vec<u32> = ids.iter().map(|id| shard_of(id, 1000)).collect();
        assert_eq!(got, PINNED_1000);
    }
    const PINNED_3: [u32; 4] = [1, 0, 1, 2];
    const PINNED_1000: [u32; 4] = [287, 933, 227, 742];

    #[test]
    fn growing_moves_only_to_the_new_shard_and_spreads_evenly() {
        let ids: Vec<String> = (0..3000)
            .map(|i| format!("imap:u{i}@example.org"))
            .collect();
        let mut sizes = [0usize; 3];
        let mut moved = 0;
        for id in &ids {
            let (three, four) = (shard_of(id, 3), shard_of(id, 4));
            sizes[three as usize] += 1;
            if three != four {
                assert_eq!(four, 3, "{id} moved between old shards");
                moved += 1;
            }
        }
        for s in sizes {
            assert!((900..1100).contains(&s), "uneven shards: {sizes:?}");
        }
        // About a quarter go to the new shard.
        assert!((650..850).contains(&moved), "{moved} of 3000 moved");
    }

    #[test]
    fn parse_takes_k_of_n_from_zero() {
        assert_eq!(Shard::parse("0/3").unwrap(), Shard { index: 0, count: 3 });
        assert_eq!(Shard::parse(" 2/3 ").unwrap(), Shard { index: 2, count: 3 });
        assert_eq!(Shard::parse("0/1").unwrap().to_string(), "0/1");
        for bad in [
            "3/3",
            "1/0",
            "0/0",
            "",
            "1",
            "/3",
            "1/",
            "-1/3",
            "+1/3",
            "a/3",
            "1/b",
            "1/3/5",
            "1.0/3",
            "0/70000",
            "99999999999/3",
        ] {
            let e = Shard::parse(bad).unwrap_err();
            assert_eq!(e.kind, crate::error::Kind::Usage, "{bad}");
            assert!(e.message().contains("--shard"), "{}", e.message());
        }
        assert!(
            Shard::parse("3/3")
                .unwrap_err()
                .message()
                .contains("0 to 2")
        );
    }
}
