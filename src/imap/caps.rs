//! The server's capabilities, parsed in one place from whichever response
//! lists them: the greeting's `[CAPABILITY ...]` code, a `* CAPABILITY`
//! line, or (after login) an `* ENABLED` answer.

use std::collections::HashSet;

/// Capability words as the server listed them, and the same upper-cased
/// for lookups (capability names are case-insensitive).
#[derive(Debug, Clone, Default)]
pub struct Caps {
    words: Vec<String>,
    set: HashSet<String>,
}

impl Caps {
    pub fn from_words<'a>(words: impl IntoIterator<Item = &'a str>) -> Caps {
        let mut c = Caps::default();
        for w in words {
            if c.set.insert(w.to_ascii_uppercase()) {
                c.words.push(w.to_string());
            }
        }
        c
    }

    /// From the untagged lines of a reply: every `* CAPABILITY ...` line.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Caps {
        Caps::from_words(lines.iter().flat_map(|l| {
            untagged(l.as_ref(), "CAPABILITY")
                .unwrap_or("")
                .split_ascii_whitespace()
        }))
    }

    /// From a greeting that lists them (`* OK [CAPABILITY ...] text`).
    pub fn from_greeting(greeting: &str) -> Option<Caps> {
        let start = greeting.find("[CAPABILITY ")? + "[CAPABILITY ".len();
        let end = start + greeting[start..].find(']')?;
        Some(Caps::from_words(
            greeting[start..end].split_ascii_whitespace(),
        ))
    }

    /// The extensions an `* ENABLED` line names (RFC 5161).
    pub fn enabled<S: AsRef<str>>(lines: &[S]) -> Caps {
        Caps::from_words(lines.iter().flat_map(|l| {
            untagged(l.as_ref(), "ENABLED")
                .unwrap_or("")
                .split_ascii_whitespace()
        }))
    }

    pub fn has(&self, word: &str) -> bool {
        self.set.contains(&word.to_ascii_uppercase())
    }

    /// The words as listed, for `--show-cert`.
    pub fn words(&self) -> &[String] {
        &self.words
    }
}

/// The rest of `* WORD rest`, any case.
fn untagged<'a>(line: &'a str, word: &str) -> Option<&'a str> {
    let rest = line.strip_prefix("* ")?;
    let (w, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    w.eq_ignore_ascii_case(word).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_parses_alike() {
        let g =
            Caps::from_greeting("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=PLAIN] ready").unwrap();
        assert!(g.has("sasl-ir") && g.has("AUTH=PLAIN") && !g.has("STARTTLS"));
        assert!(Caps::from_greeting("* OK ready").is_none());
        let l = Caps::from_lines(&[
            "* CAPABILITY IMAP4rev1 STARTTLS",
            "* OK x",
            "* capability IDLE",
        ]);
        assert_eq!(l.words(), ["IMAP4rev1", "STARTTLS", "IDLE"]);
        let e = Caps::enabled(&["* ENABLED CONDSTORE", "* CAPABILITY MOVE"]);
        assert!(e.has("condstore") && !e.has("MOVE"));
    }
}
