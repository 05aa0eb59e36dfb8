//! Message flags between IMAP, Maildir file names and the ledger, and the
//! three-way merge that two-way flag sync runs on them.
//!
//! Pure values and functions: nothing here reads a directory, renames a file
//! or talks to a server; the caller does that with what these return.
//!
//! # The three views of a message's flags
//!
//! - **IMAP**: system flags `\Seen`, `\Answered`, `\Flagged`, `\Deleted`,
//!   `\Draft` (case-insensitive), and keywords: any other atom, such as
//!   `$Forwarded` or `Junk`, kept exactly as the server spells it and
//!   compared exactly. `\Recent` is per-session and ignored; other
//!   `\`-flags (`\*`, unknown extensions) and keywords that are not valid
//!   IMAP atoms are dropped, so [`Flags::imap_list`] is always a valid
//!   argument to `UID STORE`.
//! - **Maildir**: the letters after `:2,` in a file name, in ASCII order:
//!   `D` Draft, `F` Flagged, `R` Answered (replied), `S` Seen, `T` Deleted
//!   (trashed). Keywords never go into file names. Other letters (`P`
//!   passed, lower-case letters that some clients use for keywords) are not
//!   ours: we ignore them when reading and keep them when rewriting
//!   ([`replace_letters`]).
//! - **Ledger**: the IMAP atoms separated by single spaces, in [`Flags`]'
//!   order ([`to_ledger`], [`from_ledger`]).
//!
//! # The merge
//!
//! [`merge`] takes the last synced state (base), the local state and the
//! server state. For every flag: if one side changed it relative to base,
//! that side wins; if both changed it, they changed it the same way (a flag
//! is only set or clear), and that is the result. So a flag added on either
//! side is set, and a removal on either side is kept (the other side cannot
//! have re-added a flag it already had). As a formula, per flag:
//! `if base { local && server } else { local || server }`.
//!
//! Keywords are the exception: file names cannot carry them, so the local
//! side never has keywords and must not be read as having removed them. The
//! result's keywords are the server's (the merge with local taken as base),
//! whatever `local` holds.

use std::collections::BTreeSet;

/// An IMAP system flag that has a Maildir letter. The order of the variants
/// is the order in which [`Flags`] lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum System {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
}

impl System {
    pub const ALL: [System; 5] = [
        System::Seen,
        System::Answered,
        System::Flagged,
        System::Deleted,
        System::Draft,
    ];

    /// The flag as IMAP writes it, e.g. `\Seen`.
    pub fn imap_name(self) -> &'static str {
        match self {
            System::Seen => "\\Seen",
            System::Answered => "\\Answered",
            System::Flagged => "\\Flagged",
            System::Deleted => "\\Deleted",
            System::Draft => "\\Draft",
        }
    }

    /// Its letter in a Maildir file name.
    pub fn maildir_letter(self) -> char {
        match self {
            System::Seen => 'S',
            System::Answered => 'R',
            System::Flagged => 'F',
            System::Deleted => 'T',
            System::Draft => 'D',
        }
    }

    /// The system flag named `s` (case-insensitive, with the backslash).
    pub fn from_imap(s: &str) -> Option<System> {
        System::ALL
            .into_iter()
            .find(|f| f.imap_name().eq_ignore_ascii_case(s))
    }

    /// The system flag for a Maildir letter (upper-case only).
    pub fn from_letter(c: char) -> Option<System> {
        System::ALL.into_iter().find(|f| f.maildir_letter() == c)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of flags: system flags plus keywords. Equality, the iteration order
/// and every rendering are deterministic (system flags in [`System`] order,
/// then keywords in byte order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    system: u8,
    keywords: BTreeSet<String>,
}

/// Whether `s` may be sent as an IMAP keyword: a non-empty atom (RFC 3501
/// ABNF `atom`: printable ASCII except `( ) { % * " \ ]` and space) that does
/// not start with a backslash.
pub fn is_keyword(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| {
            (0x21..0x7f).contains(&b)
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        })
}

impl Flags {
    pub fn new() -> Flags {
        Flags::default()
    }

    /// Flags from IMAP flag strings (`\Seen`, `$Forwarded`, ...), as the
    /// `imap` crate's `Flag` displays them. `\Recent`, unknown `\`-flags and
    /// strings that are not atoms are skipped.
    pub fn parse<I, S>(flags: I) -> Flags
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = Flags::new();
        for f in flags {
            let f = f.as_ref();
            if let Some(sys) = System::from_imap(f) {
                out.insert(sys);
            } else {
                out.insert_keyword(f);
            }
        }
        out
    }

    pub fn contains(&self, flag: System) -> bool {
        self.system & flag.bit() != 0
    }

    pub fn insert(&mut self, flag: System) {
        self.system |= flag.bit();
    }

    #[cfg(test)]
    pub fn remove(&mut self, flag: System) {
        self.system &= !flag.bit();
    }

    /// Add a keyword; false (and nothing added) if it is not a valid keyword.
    pub fn insert_keyword(&mut self, keyword: &str) -> bool {
        if !is_keyword(keyword) {
            return false;
        }
        self.keywords.insert(keyword.to_string());
        true
    }

    #[cfg(test)]
    pub fn remove_keyword(&mut self, keyword: &str) {
        self.keywords.remove(keyword);
    }

    #[cfg(test)]
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.keywords.contains(keyword)
    }

    /// The system flags, in [`System`] order.
    pub fn system(&self) -> impl Iterator<Item = System> + '_ {
        System::ALL.into_iter().filter(|&f| self.contains(f))
    }

    /// The keywords, in byte order.
    pub fn keywords(&self) -> impl Iterator<Item = &str> {
        self.keywords.iter().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.system == 0 && self.keywords.is_empty()
    }

    /// The same system flags, without keywords.
    #[cfg(test)]
    pub fn without_keywords(&self) -> Flags {
        Flags {
            system: self.system,
            keywords: BTreeSet::new(),
        }
    }

    /// Every flag as an IMAP atom, system flags first.
    pub fn atoms(&self) -> impl Iterator<Item = &str> {
        self.system()
            .map(|f| -> &str { f.imap_name() })
            .chain(self.keywords())
    }

    /// The flag list for `UID STORE`, e.g. `(\Seen $Forwarded)`; `()` when
    /// empty.
    pub fn imap_list(&self) -> String {
        format!("({})", self.atoms().collect::<Vec<_>>().join(" "))
    }

    fn with_system(&self, system: u8) -> Flags {
        Flags {
            system,
            keywords: self.keywords.clone(),
        }
    }
}

/// The ledger form: the atoms separated by single spaces (empty for no flags).
pub fn to_ledger(flags: &Flags) -> String {
    flags.atoms().collect::<Vec<_>>().join(" ")
}

/// Read the ledger form back. `from_ledger(&to_ledger(f)) == f` for every
/// `f`; anything that is not a flag atom is skipped.
pub fn from_ledger(s: &str) -> Flags {
    Flags::parse(s.split_ascii_whitespace())
}

/// The Maildir letters for `flags`, in ASCII order (`DFRST`); keywords have
/// none.
pub fn maildir_letters(flags: &Flags) -> String {
    let mut letters: Vec<char> = flags.system().map(System::maildir_letter).collect();
    letters.sort_unstable();
    letters.into_iter().collect()
}

/// Split a Maildir file name into its base and the letters after `:2,` (or
/// `;2,`, the form used where `:` is not allowed in file names). The last
/// such marker counts. A name without one has no letters (`None`), which is
/// not the same as `Some("")` (`base:2,`, no flags).
pub fn split_maildir_name(name: &str) -> (&str, Option<&str>) {
    let at = match (name.rfind(":2,"), name.rfind(";2,")) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return (name, None),
    };
    (&name[..at], Some(&name[at + 3..]))
}

/// The system flags named by Maildir letters. Unknown letters, lower-case
/// letters (keywords in some clients) and anything else are ignored.
pub fn flags_from_letters(letters: &str) -> Flags {
    let mut flags = Flags::new();
    for f in letters.chars().filter_map(System::from_letter) {
        flags.insert(f);
    }
    flags
}

/// A Maildir file name: `base:2,LETTERS`.
pub fn with_letters(base: &str, letters: &str) -> String {
    format!("{base}:2,{letters}")
}

/// New letters for a file whose letters are `existing`: our five letters as
/// in `flags`, every other ASCII letter of `existing` (`P`, lower-case
/// keyword letters of other clients) kept, all in ASCII order without
/// duplicates. Characters that are not ASCII letters are dropped.
pub fn replace_letters(existing: &str, flags: &Flags) -> String {
    let mut letters: BTreeSet<char> = existing
        .chars()
        .filter(|&c| c.is_ascii_alphabetic() && System::from_letter(c).is_none())
        .collect();
    letters.extend(flags.system().map(System::maildir_letter));
    letters.into_iter().collect()
}

/// The three-way merge of two-way flag sync (see the module documentation):
/// per system flag, `if base { local && server } else { local || server }`;
/// keywords are the server's, and `local`'s keywords are ignored.
pub fn merge(base: &Flags, local: &Flags, server: &Flags) -> Flags {
    let (b, l, s) = (base.system, local.system, server.system);
    server.with_system((b & l & s) | (!b & (l | s)))
}

/// What to add to and remove from `from` to get `to`, for `UID STORE
/// +FLAGS` and `-FLAGS`: `(to - from, from - to)`, keywords included.
pub fn diff(from: &Flags, to: &Flags) -> (Flags, Flags) {
    let add = Flags {
        system: to.system & !from.system,
        keywords: to.keywords.difference(&from.keywords).cloned().collect(),
    };
    let remove = Flags {
        system: from.system & !to.system,
        keywords: from.keywords.difference(&to.keywords).cloned().collect(),
    };
    (add, remove)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn f(s: &str) -> Flags {
        from_ledger(s)
    }

    #[test]
    fn parses_imap_flags() {
        let flags = Flags::parse([
            "\\Seen",
            "\\Recent",
            "$Forwarded",
            "\\flagged",
            "Junk",
            "\\*",
            "\\Unknown",
            "bad word",
            "(x",
            "",
            "caf\u{e9}",
            "a]b",
            "%",
            "NonJunk",
            "$Forwarded",
        ]);
        assert!(flags.contains(System::Seen));
        assert!(flags.contains(System::Flagged));
        assert!(!flags.contains(System::Answered));
        assert_eq!(
            flags.keywords().collect::<Vec<_>>(),
            ["$Forwarded", "Junk", "NonJunk"]
        );
        assert_eq!(
            flags.imap_list(),
            "(\\Seen \\Flagged $Forwarded Junk NonJunk)"
        );
        assert_eq!(Flags::new().imap_list(), "()");
        // Works on owned strings too, as from `Flag::to_string()`.
        let owned = vec![String::from("\\DRAFT"), String::from("$MDNSent")];
        assert_eq!(Flags::parse(&owned).imap_list(), "(\\Draft $MDNSent)");
    }

    #[test]
    fn keywords_keep_their_case() {
        let flags = Flags::parse(["Junk", "junk", "$label1"]);
        assert_eq!(
            flags.keywords().collect::<Vec<_>>(),
            ["$label1", "Junk", "junk"]
        );
        assert!(flags.has_keyword("Junk") && !flags.has_keyword("JUNK"));
    }

    #[test]
    fn keyword_validity() {
        for ok in [
            "$Forwarded",
            "Junk",
            "a.b",
            "x-y_z",
            "~!#&'+,-./:;<=>?@[^`|}",
        ] {
            assert!(is_keyword(ok), "{ok:?}");
        }
        for bad in [
            "", " ", "a b", "(", ")", "{", "%", "*", "\"", "\\Seen", "]", "\u{7f}", "\t", "é",
        ] {
            assert!(!is_keyword(bad), "{bad:?}");
            assert!(!Flags::new().insert_keyword(bad));
        }
    }

    #[test]
    fn maildir_letters_are_sorted() {
        let all = Flags::parse(System::ALL.map(System::imap_name));
        assert_eq!(maildir_letters(&all), "DFRST");
        assert_eq!(maildir_letters(&f("\\Seen \\Answered")), "RS");
        assert_eq!(maildir_letters(&f("\\Deleted $Forwarded Junk")), "T");
        assert_eq!(maildir_letters(&Flags::new()), "");
        for sys in System::ALL {
            assert_eq!(System::from_letter(sys.maildir_letter()), Some(sys));
            assert_eq!(System::from_imap(sys.imap_name()), Some(sys));
        }
    }

    #[test]
    fn splits_maildir_names() {
        assert_eq!(
            split_maildir_name("123.M4P5.host:2,FS"),
            ("123.M4P5.host", Some("FS"))
        );
        assert_eq!(
            split_maildir_name("123.M4P5.host;2,S"),
            ("123.M4P5.host", Some("S"))
        );
        assert_eq!(
            split_maildir_name("123.M4P5.host:2,"),
            ("123.M4P5.host", Some(""))
        );
        assert_eq!(split_maildir_name("123.M4P5.host"), ("123.M4P5.host", None));
        assert_eq!(split_maildir_name(""), ("", None));
        assert_eq!(split_maildir_name(":2,"), ("", Some("")));
        assert_eq!(split_maildir_name("a:2,S;2,T"), ("a:2,S", Some("T")));
        assert_eq!(split_maildir_name("a;2,S:2,T"), ("a;2,S", Some("T")));
        // Experimental ":1," info is not flags.
        assert_eq!(split_maildir_name("a:1,xyz"), ("a:1,xyz", None));
        assert_eq!(split_maildir_name("a:2"), ("a:2", None));
    }

    #[test]
    fn letters_to_flags() {
        let flags = flags_from_letters("DFPRSTabcz,:2");
        assert_eq!(maildir_letters(&flags), "DFRST");
        assert_eq!(flags.keywords().count(), 0);
        assert!(flags_from_letters("").is_empty());
        assert!(flags_from_letters("sfrdt").is_empty());
        assert_eq!(flags_from_letters("S"), f("\\Seen"));
    }

    #[test]
    fn rebuilds_names() {
        assert_eq!(with_letters("123.host", "FS"), "123.host:2,FS");
        assert_eq!(with_letters("123.host", ""), "123.host:2,");
        let name = "123.host:2,PSa";
        let (base, letters) = split_maildir_name(name);
        let merged = f("\\Flagged \\Draft");
        let letters = replace_letters(letters.unwrap(), &merged);
        assert_eq!(letters, "DFPa");
        assert_eq!(with_letters(base, &letters), "123.host:2,DFPa");
        assert_eq!(replace_letters("ZZSS2,", &f("\\Seen")), "SZ");
    }

    #[test]
    fn ledger_round_trips() {
        for s in [
            "",
            "\\Seen",
            "\\Seen \\Answered \\Flagged \\Deleted \\Draft $Forwarded Junk",
        ] {
            assert_eq!(to_ledger(&from_ledger(s)), s);
        }
        assert_eq!(
            to_ledger(&f("Junk \\draft  \\SEEN\t$x")),
            "\\Seen \\Draft $x Junk"
        );
        assert_eq!(from_ledger("  "), Flags::new());
    }

    /// Every combination of base/local/server for one flag.
    #[test]
    fn merge_one_system_flag_exhaustively() {
        // (base, local, server) -> result
        let table = [
            ((false, false, false), false), // untouched
            ((false, false, true), true),   // added on the server
            ((false, true, false), true),   // added locally
            ((false, true, true), true),    // added on both sides
            ((true, false, false), false),  // removed on both sides
            ((true, false, true), false),   // removed locally
            ((true, true, false), false),   // removed on the server
            ((true, true, true), true),     // untouched
        ];
        for sys in System::ALL {
            for ((b, l, s), want) in table {
                let mk = |on: bool| {
                    let mut x = f("\\Seen $Other");
                    if sys == System::Seen {
                        x = f("\\Draft $Other");
                    }
                    if on {
                        x.insert(sys);
                    }
                    x
                };
                let got = merge(&mk(b), &mk(l), &mk(s));
                assert_eq!(got.contains(sys), want, "{sys:?} {b} {l} {s}");
                // The other flags, untouched everywhere, stay as they were.
                assert_eq!(got.keywords().collect::<Vec<_>>(), ["$Other"]);
            }
        }
    }

    /// Every combination for one keyword: the local side has no say.
    #[test]
    fn merge_one_keyword_exhaustively() {
        for b in [false, true] {
            for l in [false, true] {
                for s in [false, true] {
                    let mk = |on: bool| {
                        let mut x = Flags::new();
                        if on {
                            x.insert_keyword("$Forwarded");
                        }
                        x
                    };
                    let got = merge(&mk(b), &mk(l), &mk(s));
                    assert_eq!(got.has_keyword("$Forwarded"), s, "{b} {l} {s}");
                }
            }
        }
    }

    #[test]
    fn merge_examples() {
        // Read locally, flagged on the server: both.
        assert_eq!(
            merge(&f(""), &f("\\Seen"), &f("\\Flagged")),
            f("\\Seen \\Flagged")
        );
        // Unread locally, replied on the server: replied, not seen.
        assert_eq!(
            merge(&f("\\Seen"), &f(""), &f("\\Seen \\Answered")),
            f("\\Answered")
        );
        // Keywords: server removed Junk, added $Forwarded; local has none.
        assert_eq!(
            merge(&f("\\Seen Junk"), &f("\\Seen"), &f("\\Seen $Forwarded")),
            f("\\Seen $Forwarded")
        );
        // Keywords on the local side are ignored.
        assert_eq!(merge(&f(""), &f("Junk"), &f("")), f(""));
    }

    #[test]
    fn diff_examples() {
        let (add, remove) = diff(&f("\\Seen Junk"), &f("\\Flagged Junk $Forwarded"));
        assert_eq!(add, f("\\Flagged $Forwarded"));
        assert_eq!(remove, f("\\Seen"));
        assert_eq!(add.imap_list(), "(\\Flagged $Forwarded)");
        let (add, remove) = diff(&f("\\Seen"), &f("\\Seen"));
        assert!(add.is_empty() && remove.is_empty());
    }

    fn flags() -> impl Strategy<Value = Flags> {
        let keyword = prop_oneof![
            Just("$Forwarded".to_string()),
            Just("Junk".to_string()),
            Just("junk".to_string()),
            Just("$MDNSent".to_string()),
            "[!-~]{1,6}",
            any::<String>(),
        ];
        (0u8..32, proptest::collection::vec(keyword, 0..4)).prop_map(|(system, kws)| {
            let mut flags = Flags {
                system,
                keywords: BTreeSet::new(),
            };
            for k in kws {
                flags.insert_keyword(&k);
            }
            flags
        })
    }

    fn subset(a: &Flags, b: &Flags) -> bool {
        a.system & !b.system == 0 && a.keywords.is_subset(&b.keywords)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn merge_with_untouched_local_is_server(b in flags(), s in flags()) {
            prop_assert_eq!(merge(&b, &b, &s), s.clone());
            // Local never has keywords: a keyword-free local equal to base
            // in system flags is untouched too.
            prop_assert_eq!(merge(&b, &b.without_keywords(), &s), s);
        }

        #[test]
        fn merge_with_untouched_server_is_local(b in flags(), l in flags()) {
            let got = merge(&b, &l, &b);
            prop_assert_eq!(got.system, l.system);
            prop_assert_eq!(got.keywords, b.keywords);
        }

        #[test]
        fn merge_is_idempotent(x in flags()) {
            prop_assert_eq!(merge(&x, &x, &x), x);
        }

        #[test]
        fn merge_keeps_every_addition(b in flags(), l in flags(), s in flags()) {
            let got = merge(&b, &l, &s);
            let (local_added, _) = diff(&b, &l.without_keywords());
            let (server_added, _) = diff(&b, &s);
            prop_assert!(subset(&local_added, &got));
            prop_assert!(subset(&server_added, &got));
            // And every removal the other side did not undo is kept.
            let (_, local_removed) = diff(&b, &l);
            let (_, server_removed) = diff(&b, &s);
            prop_assert_eq!(got.system & local_removed.system & !server_added.system, 0);
            prop_assert_eq!(got.system & server_removed.system & !local_added.system, 0);
            // Symmetric in local and server for system flags.
            prop_assert_eq!(got.system, merge(&b, &s, &l).system);
            // Keywords come from the server alone.
            prop_assert_eq!(&got.keywords, &s.keywords);
        }

        #[test]
        fn diff_applies(from in flags(), to in flags()) {
            let (add, remove) = diff(&from, &to);
            let mut got = from.clone();
            for sys in add.system() { got.insert(sys) }
            for k in add.keywords() { got.insert_keyword(k); }
            for sys in remove.system() { got.remove(sys) }
            for k in remove.keywords() { got.remove_keyword(k) }
            prop_assert_eq!(got, to.clone());
            prop_assert!(subset(&add, &to));
            prop_assert!(remove.system & to.system == 0 && remove.keywords.is_disjoint(&to.keywords));
        }

        #[test]
        fn ledger_round_trips_exactly(x in flags()) {
            let s = to_ledger(&x);
            prop_assert_eq!(from_ledger(&s), x.clone());
            prop_assert_eq!(to_ledger(&from_ledger(&s)), s.clone());
            prop_assert_eq!(x.imap_list(), format!("({s})"));
            prop_assert_eq!(Flags::parse(x.atoms()), x);
        }

        #[test]
        fn letters_round_trip(x in flags()) {
            let letters = maildir_letters(&x);
            prop_assert_eq!(flags_from_letters(&letters), x.without_keywords());
            let name = with_letters("1.host", &letters);
            prop_assert_eq!(split_maildir_name(&name), ("1.host", Some(letters.as_str())));
        }

        #[test]
        fn parse_never_panics(v in proptest::collection::vec(any::<String>(), 0..8)) {
            let x = Flags::parse(&v);
            prop_assert!(x.keywords().all(is_keyword));
        }
    }
}
