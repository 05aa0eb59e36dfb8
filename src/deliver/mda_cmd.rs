//! An MDA command line, as fetchmail's `mda` option takes it: parsing it
//! into an argv (or keeping it for `sh -c`) and filling in placeholders.
//!
//! [`parse`] splits the command like a shell would: blanks separate words,
//! `'…'` quotes literally, `"…"` quotes with `\` escaping only `$ ` " \` and
//! newline, and a `\` outside quotes escapes the next character. If the
//! command uses shell syntax that splitting cannot express, it is kept whole
//! and run with `/bin/sh -c`; that is the case for any of
//! `| & ; < > ( ) $ ` * ? [ ] { }` outside quotes, `$` or `` ` `` inside
//! double quotes, `~` or `#` at the start of a word, a newline outside
//! quotes, a first word that is a variable assignment (`NAME=value cmd`), or
//! a first word that is a shell keyword or builtin (`exec`, `if`, `cd`, …).
//!
//! [`expand`] substitutes `%F` (the envelope sender), `%T` (the recipient
//! user) and `%%` (a literal `%`); any other `%X` is left as is. In an argv
//! each argument is substituted in place, never re-split. In a shell command
//! the value is quoted for where it stands: `'v'` outside quotes, `v` with
//! each `'` written `'\''` inside single quotes, and `"'v'"` inside double
//! quotes, so no value can end a quote early or be read as syntax. A `\%F`
//! or `$%F` is taken apart first (the `\` dropped, the `$` escaped) so the
//! quoting still holds. Where the quoting context is beyond this simple
//! model, after `$(`, `` ` ``, `${` with an operator, `$'` or `<<`,
//! [`parse`] refuses a placeholder (a config error); should such a command
//! reach [`expand`] anyway, the value is reduced to `[A-Za-z0-9@._+=-]`,
//! which is inert anywhere.
//!
//! NUL bytes cannot be passed in an argv; in values they become `_`.

use crate::error::{Result, config};

/// A parsed MDA command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mda {
    /// Run directly, after substituting placeholders in each argument.
    Argv(Vec<String>),
    /// Run with `/bin/sh -c`, after substituting quoted placeholders.
    Shell(String),
}

/// The shell that runs [`Mda::Shell`] commands.
pub const SHELL: &str = "/bin/sh";

/// First words that only a shell understands.
const SHELL_WORDS: &[&str] = &[
    "!", "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done",
    "in", "function", "select", "time", "exec", "eval", ".", "source", "export", "readonly", "set",
    "unset", "trap", "cd", "umask", "ulimit", "command", "builtin", "local", "exit", "return",
    "shift", "break", "continue", "wait", ":", "alias",
];

/// Split like a shell would (quotes '…' and "…", backslash escapes,
/// whitespace) into an argv; if the command contains shell syntax that
/// splitting cannot express, keep it whole for `sh -c` (see the module
/// documentation). Unbalanced quotes, a trailing backslash, an empty command
/// and, in a shell command, a placeholder where it cannot be quoted safely
/// are config errors.
pub fn parse(cmd: &str) -> Result<Mda> {
    let bad = |why: &str| config(format!("mda command {cmd:?}: {why}"));
    match split(cmd).map_err(|w| bad(&w))? {
        Some(words) => {
            if words.is_empty() {
                return Err(bad("is empty"));
            }
            let first = words[0].as_str();
            if SHELL_WORDS.contains(&first) || is_assignment(first) {
                return check_shell(cmd).map_err(|w| bad(&w));
            }
            Ok(Mda::Argv(words))
        }
        None => check_shell(cmd).map_err(|w| bad(&w)),
    }
}

fn check_shell(cmd: &str) -> std::result::Result<Mda, String> {
    let (_, problem) = shell_expand(cmd, "", "");
    match problem {
        Some(p) => Err(p),
        None => Ok(Mda::Shell(cmd.to_string())),
    }
}

/// `NAME=...` with a valid shell variable name.
fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The words of `cmd`, or `None` if it needs a shell.
fn split(cmd: &str) -> std::result::Result<Option<Vec<String>>, String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut it = cmd.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            ' ' | '\t' => {
                if let Some(w) = cur.take() {
                    words.push(w);
                }
            }
            '\n' => return Ok(None),
            '\'' => {
                let w = cur.get_or_insert_default();
                loop {
                    match it.next() {
                        None => return Err("unbalanced single quote".into()),
                        Some('\'') => break,
                        Some(c) => w.push(c),
                    }
                }
            }
            '"' => {
                let w = cur.get_or_insert_default();
                loop {
                    match it.next() {
                        None => return Err("unbalanced double quote".into()),
                        Some('"') => break,
                        Some('$' | '`') => return Ok(None),
                        Some('\\') => match it.peek() {
                            Some(&e @ ('"' | '\\' | '$' | '`')) => {
                                w.push(e);
                                it.next();
                            }
                            Some('\n') => {
                                it.next();
                            }
                            _ => w.push('\\'),
                        },
                        Some(c) => w.push(c),
                    }
                }
            }
            '\\' => match it.next() {
                None => return Err("ends with a backslash".into()),
                Some('\n') => {} // line continuation
                Some(e) => cur.get_or_insert_default().push(e),
            },
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' | '*' | '?' | '[' | ']' | '{'
            | '}' => return Ok(None),
            '~' | '#' if cur.is_none() => return Ok(None),
            c => cur.get_or_insert_default().push(c),
        }
    }
    if let Some(w) = cur {
        words.push(w);
    }
    Ok(Some(words))
}

/// Substitute placeholders: `%F` envelope sender, `%T` the recipient user,
/// `%%` a literal `%`; other `%X` stay. Returns the argv to exec: the
/// substituted argv, or `["/bin/sh", "-c", SCRIPT]` with each value quoted
/// for where it stands (see the module documentation).
pub fn expand(mda: &Mda, sender: &str, user: &str) -> Vec<String> {
    match mda {
        Mda::Argv(words) => words.iter().map(|w| expand_word(w, sender, user)).collect(),
        Mda::Shell(script) => vec![
            SHELL.to_string(),
            "-c".to_string(),
            shell_expand(script, sender, user).0,
        ],
    }
}

fn no_nul(v: &str) -> String {
    v.replace('\0', "_")
}

fn expand_word(word: &str, sender: &str, user: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut it = word.chars().peekable();
    while let Some(c) = it.next() {
        if c == '%' {
            match it.peek() {
                Some('F') => out.push_str(&no_nul(sender)),
                Some('T') => out.push_str(&no_nul(user)),
                Some('%') => out.push('%'),
                _ => {
                    out.push('%');
                    continue;
                }
            }
            it.next();
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Unquoted,
    Single,
    Double,
    Comment,
}

/// `v` for inside single quotes: each `'` closes, is escaped, and reopens.
fn single_quoted_body(v: &str) -> String {
    no_nul(v).replace('\'', r"'\''")
}

/// `v` reduced to characters that mean nothing to a shell in any context.
fn inert(v: &str) -> String {
    v.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@._+=-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The length of a simple `${NAME}` (or `${1}`, `${@}`, …) at the start of
/// `rest` (which starts after the `$`), if it is one.
fn simple_braced_param(rest: &[char]) -> Option<usize> {
    if rest.first() != Some(&'{') {
        return None;
    }
    let close = rest.iter().position(|&c| c == '}')?;
    let name = &rest[1..close];
    let ok = match name {
        [] => false,
        [c] => c.is_ascii_alphanumeric() || "_@*#?$!-".contains(*c),
        _ => {
            (name[0].is_ascii_alphabetic() || name[0] == '_')
                && name.iter().all(|c| c.is_ascii_alphanumeric() || *c == '_')
                || name.iter().all(|c| c.is_ascii_digit())
        }
    };
    ok.then_some(close + 1)
}

/// Substitute placeholders in a shell script, quoting each value for the
/// context it appears in. Returns the script and the first problem that
/// [`parse`] refuses (a placeholder in an opaque context, unbalanced
/// quotes); the script is safe to run either way.
fn shell_expand(script: &str, sender: &str, user: &str) -> (String, Option<String>) {
    let s: Vec<char> = script.chars().collect();
    let mut out = String::with_capacity(script.len() + sender.len() + user.len());
    let mut problem: Option<String> = None;
    let mut ctx = Ctx::Unquoted;
    // Past a construct whose quoting we do not model.
    let mut opaque = false;
    let mut word_start = true;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let mut placeholder = false;
        match ctx {
            Ctx::Comment => {
                out.push(c);
                if c == '\n' {
                    ctx = Ctx::Unquoted;
                    word_start = true;
                }
                i += 1;
                continue;
            }
            Ctx::Single => match c {
                '\'' => ctx = Ctx::Unquoted,
                '%' => placeholder = true,
                _ => {}
            },
            Ctx::Double => match c {
                '"' => ctx = Ctx::Unquoted,
                '\\' => match next {
                    Some('$' | '`' | '"' | '\\' | '\n') => {
                        out.push(c);
                        out.push(next.unwrap_or_default());
                        i += 2;
                        continue;
                    }
                    // A literal backslash; written `\\` (the same inside
                    // double quotes) so it cannot escape the `"` we may put
                    // after it.
                    Some('%') => {
                        out.push_str(r"\\");
                        i += 1;
                        continue;
                    }
                    _ => {}
                },
                '$' => {
                    if next == Some('%') {
                        out.push_str(r"\$");
                        i += 1;
                        continue;
                    }
                    if let Some(n) = simple_braced_param(&s[i + 1..]) {
                        out.extend(&s[i..i + 1 + n]);
                        i += 1 + n;
                        continue;
                    }
                    if matches!(next, Some('(' | '{')) {
                        opaque = true;
                    }
                }
                '`' => opaque = true,
                '%' => placeholder = true,
                _ => {}
            },
            Ctx::Unquoted => match c {
                '\'' => ctx = Ctx::Single,
                '"' => ctx = Ctx::Double,
                '\\' => {
                    if next == Some('%') {
                        // `\%F` means `%F` with the % escaped: substitute as
                        // in an argv, dropping the backslash.
                        i += 1;
                        continue;
                    }
                    out.push(c);
                    if let Some(n) = next {
                        out.push(n);
                    }
                    i += 2;
                    // A line continuation vanishes: a `#` after it may
                    // still start a comment.
                    if next != Some('\n') {
                        word_start = false;
                    }
                    continue;
                }
                '#' if word_start => ctx = Ctx::Comment,
                '$' => {
                    if next == Some('%') {
                        out.push_str(r"\$");
                        word_start = false;
                        i += 1;
                        continue;
                    }
                    if let Some(n) = simple_braced_param(&s[i + 1..]) {
                        out.extend(&s[i..i + 1 + n]);
                        word_start = false;
                        i += 1 + n;
                        continue;
                    }
                    if matches!(next, Some('(' | '{' | '\'' | '"')) {
                        opaque = true;
                    }
                }
                '`' => opaque = true,
                '<' if next == Some('<') => opaque = true,
                '%' => placeholder = true,
                _ => {}
            },
        }
        if placeholder {
            let value = match next {
                Some('F') => Some(sender),
                Some('T') => Some(user),
                _ => None,
            };
            if next == Some('%') {
                out.push('%');
                i += 2;
            } else if let Some(v) = value {
                if opaque {
                    problem.get_or_insert_with(|| {
                        format!(
                            "%{} after $(, `, ${{, $' or << cannot be quoted safely; \
                             use a script file",
                            next.unwrap_or_default()
                        )
                    });
                    out.push_str(&inert(v));
                } else {
                    match ctx {
                        Ctx::Unquoted => {
                            out.push('\'');
                            out.push_str(&single_quoted_body(v));
                            out.push('\'');
                        }
                        Ctx::Single => out.push_str(&single_quoted_body(v)),
                        Ctx::Double => {
                            out.push_str("\"'");
                            out.push_str(&single_quoted_body(v));
                            out.push_str("'\"");
                        }
                        Ctx::Comment => unreachable!("comments are copied above"),
                    }
                }
                i += 2;
            } else {
                out.push('%');
                i += 1;
            }
            word_start = false;
            continue;
        }
        out.push(c);
        word_start = ctx == Ctx::Unquoted && " \t\n;&|()<>".contains(c);
        i += 1;
    }
    if !opaque && matches!(ctx, Ctx::Single | Ctx::Double) {
        problem.get_or_insert_with(|| "unbalanced quotes".into());
    }
    (out, problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;
    use std::process::Command;

    fn argv(cmd: &str) -> Vec<String> {
        match parse(cmd).unwrap() {
            Mda::Argv(v) => v,
            other => panic!("{cmd:?} parsed as {other:?}"),
        }
    }

    fn is_shell(cmd: &str) -> bool {
        matches!(parse(cmd).unwrap(), Mda::Shell(_))
    }

    #[test]
    fn plain_commands_split_into_argv() {
        assert_eq!(
            argv("/usr/bin/procmail -d %T"),
            ["/usr/bin/procmail", "-d", "%T"]
        );
        assert_eq!(argv("  a\t b  "), ["a", "b"]);
    }

    #[test]
    fn quoting_like_sh() {
        assert_eq!(
            argv(r#"cmd 'a b' "c d" e\ f "x\"y" 'it'\''s' "\$HOME" "a\b" "\\""#),
            [
                "cmd", "a b", "c d", "e f", "x\"y", "it's", "$HOME", r"a\b", "\\"
            ]
        );
        assert_eq!(argv(r#"cmd '' "" x"#), ["cmd", "", "", "x"]);
        assert_eq!(argv(r#"a'b'"c"d"#), ["abcd"]);
        assert_eq!(argv("cmd a\\\nb"), ["cmd", "ab"]);
        assert_eq!(argv("cmd \"a\\\nb\""), ["cmd", "ab"]);
        assert_eq!(argv(r"cmd \|\;\$\*"), ["cmd", "|;$*"]);
        assert_eq!(
            argv(r"cmd 'a|b' 'c;d' '$x' '`' ' # ~'"),
            ["cmd", "a|b", "c;d", "$x", "`", " # ~"]
        );
        assert_eq!(
            argv(r#"cmd "a|b;c*d?e[f]{g}(h)<i>&j#~""#),
            ["cmd", "a|b;c*d?e[f]{g}(h)<i>&j#~"]
        );
        assert_eq!(
            argv(r"cmd a~b a#b \~/x ''~ \#"),
            ["cmd", "a~b", "a#b", "~/x", "~", "#"]
        );
        assert_eq!(argv("cmd é ü"), ["cmd", "é", "ü"]);
    }

    #[test]
    fn shell_syntax_keeps_the_command_whole() {
        for cmd in [
            "procmail | tee x",
            "a && b",
            "a & b",
            "a; b",
            "a < f",
            "a > f",
            "(a)",
            "a $HOME",
            "a `id`",
            "a *",
            "a ?",
            "a [x]",
            "a {x}",
            "a }",
            "cmd ~/x",
            "cmd ~",
            "cmd # comment",
            "a\nb",
            "a \"$x\"",
            "a \"`x`\"",
            "FOO=1 procmail",
            "a=b",
            "_x=1 procmail",
            "exec procmail -d %T",
            "if true; then x; fi",
            "! x",
            ". ./script",
        ] {
            assert!(is_shell(cmd), "{cmd:?}");
            assert_eq!(parse(cmd).unwrap(), Mda::Shell(cmd.to_string()));
        }
        for cmd in ["1FOO=x y", "-x=1 y", "=x y", "x y=1"] {
            assert!(!is_shell(cmd), "{cmd:?}");
        }
    }

    #[test]
    fn bad_commands_are_config_errors() {
        for cmd in [
            "a 'b",
            "a \"b",
            "a \\",
            "",
            "   \t ",
            "a | b 'c",
            "a | b \"c",
            "echo $(echo %F) | x",
            "echo `echo %T`",
            "cat <<EOF\n%F\nEOF",
            "echo ${X:-%F} | y",
            "echo \"$(echo '%F')\"",
        ] {
            let e = parse(cmd).unwrap_err();
            assert_eq!(e.kind, Kind::Config, "{cmd:?}");
            assert!(e.message().contains("mda command"), "{}", e.message());
        }
        // Placeholders before an opaque construct, or none at all, are fine.
        for cmd in [
            "procmail -f %F | tee $(date)",
            "echo $(date) `id` ${X:-y} | x",
            "echo ${HOME} %F | cat",
            "echo \"${HOME}%F\" | cat",
            "x $(echo ')') | y",
        ] {
            assert!(is_shell(cmd), "{cmd:?}");
        }
    }

    #[test]
    fn argv_substitution() {
        let m = parse("deliver -f %F -d %T -x %% -y %%F -z %Q% 100%").unwrap();
        assert_eq!(
            expand(&m, "a@b", "alice"),
            [
                "deliver", "-f", "a@b", "-d", "alice", "-x", "%", "-y", "%F", "-z", "%Q%", "100%"
            ]
        );
        let m = parse("x pre%Fpost '%T %T' \\%F").unwrap();
        assert_eq!(expand(&m, "s", "u"), ["x", "prespost", "u u", "s"]);
        // Values are never re-split or interpreted.
        let m = parse("x %F").unwrap();
        for v in HOSTILE {
            assert_eq!(expand(&m, v, "u"), ["x".to_string(), v.replace('\0', "_")]);
        }
        // A value holding a placeholder is not expanded again.
        assert_eq!(expand(&m, "%T", "u"), ["x", "%T"]);
    }

    const HOSTILE: &[&str] = &[
        "x';rm -rf ~;'",
        "x';touch CANARY;'",
        "$(touch CANARY)",
        "`touch CANARY`",
        "\"; touch CANARY; \"",
        "a b",
        "\\",
        "'",
        "\"",
        "\\'",
        "'\\''",
        "$HOME",
        "${HOME}",
        "a\nb; touch CANARY",
        "\n",
        "*",
        "~",
        "-n",
        "",
        "%F",
        "%%",
        "#",
        "\\\"'\"'`$(",
        "é\u{a0}x",
        "a\0b",
        "$'\\x41'",
        "!!",
    ];

    /// Shells to run expanded commands with: /bin/sh, and bash (whose
    /// extensions, like `$'…'`, must not open holes either) if installed.
    fn shells() -> Vec<&'static str> {
        let mut v = vec![SHELL];
        if Command::new("bash").arg("-c").arg("true").status().is_ok() {
            v.push("bash");
        }
        v
    }

    /// Run `script` with sender `v` in a fresh directory; its stdout, and
    /// whether anything was created in the directory.
    fn run(shell: &str, script: &str, v: &str) -> (String, bool) {
        let d = tempfile::tempdir().unwrap();
        let m = Mda::Shell(script.to_string());
        let args = expand(&m, v, "bob");
        assert_eq!(args[0], SHELL);
        assert_eq!(args[1], "-c");
        let out = Command::new(shell)
            .arg("-c")
            .arg(&args[2])
            .current_dir(d.path())
            .env("HOME", d.path())
            .env("X", "pfx")
            .output()
            .unwrap();
        let created = std::fs::read_dir(d.path()).unwrap().next().is_some();
        (String::from_utf8(out.stdout).unwrap(), created)
    }

    #[test]
    fn shell_substitution_is_inert_in_every_context() {
        // (template, expected output with value v)
        type Want = fn(&str) -> String;
        let cases: &[(&str, Want)] = &[
            ("printf '[%s]' %F", |v| format!("[{v}]")),
            ("printf '[%s]' '%F'", |v| format!("[{v}]")),
            ("printf '[%s]' \"%F\"", |v| format!("[{v}]")),
            ("printf '[%s]' x%Fy", |v| format!("[x{v}y]")),
            ("printf '[%s]' 'x'%F\"y\"", |v| format!("[x{v}y]")),
            ("printf '[%s]' 'a %F b'", |v| format!("[a {v} b]")),
            ("printf '[%s]' \"a %F b\"", |v| format!("[a {v} b]")),
            ("printf '[%s]' \\%F", |v| format!("[{v}]")),
            ("printf '[%s]' \"\\%F\"", |v| format!("[\\{v}]")),
            ("printf '[%s]' $%F", |v| format!("[${v}]")),
            ("printf '[%s]' \"$%F\"", |v| format!("[${v}]")),
            ("printf '[%s]' %F%T", |v| format!("[{v}bob]")),
            ("printf '[%s]' \"%F\"'%T'", |v| format!("[{v}bob]")),
            ("printf '[%s]' '%%F' %%", |_| "[%F][%]".into()),
            ("printf '[%s]' %F # %F", |v| format!("[{v}]")),
            ("printf '[%s]' ok #%F\nprintf '[%s]' %T", |_| {
                "[ok][bob]".into()
            }),
            ("printf '[%s]' ${X}%F", |v| format!("[pfx{v}]")),
            ("printf '[%s]' \"${X}\"%F", |v| format!("[pfx{v}]")),
            ("printf '[%s]' a \\\n#%F\nprintf '[%s]' %T", |_| {
                "[a][bob]".into()
            }),
        ];
        for shell in shells() {
            for (template, want) in cases {
                // Whether or not parse would need a shell for it, the
                // template is one parse accepts as a shell command.
                parse(template).unwrap_or_else(|e| panic!("{template:?}: {}", e.message()));
                assert_eq!(check_shell(template), Ok(Mda::Shell(template.to_string())));
                for v in HOSTILE {
                    let (out, created) = run(shell, template, v);
                    let v = v.replace('\0', "_");
                    assert!(!created, "{shell}: {template:?} with {v:?} ran something");
                    assert_eq!(out, want(&v), "{shell}: {template:?} with {v:?}");
                }
            }
        }
    }

    #[test]
    fn opaque_contexts_get_inert_values() {
        // parse refuses these; built by hand they still cannot run anything.
        for shell in shells() {
            for template in [
                "printf '[%s]' \"$(printf %s %F)\"",
                "printf '[%s]' \"`printf %s %F`\"",
                "printf '[%s]' \"${UNSET:-%F}\"",
                "cat <<EOF\n[%F]\nEOF",
            ] {
                assert_eq!(parse(template).unwrap_err().kind, Kind::Config);
                for v in HOSTILE {
                    let (out, created) = run(shell, template, v);
                    assert!(!created, "{shell}: {template:?} with {v:?} ran something");
                    assert!(out.contains(&inert(v)), "{shell}: {template:?}: {out:?}");
                }
            }
        }
        assert_eq!(inert("a b;$(x)@c.d-e+f=g_h"), "a_b___x_@c.d-e+f=g_h");
    }

    #[test]
    fn shell_expansion_text() {
        let m = parse("procmail -f %F -a '%T' | cat").unwrap();
        assert_eq!(
            expand(&m, "x';rm -rf ~;'", "bo'b"),
            [
                SHELL,
                "-c",
                r"procmail -f 'x'\'';rm -rf ~;'\''' -a 'bo'\''b' | cat"
            ]
        );
        let m = parse("echo \"%F\" 100% %Q %% | cat").unwrap();
        assert_eq!(
            expand(&m, "s", "u"),
            [SHELL, "-c", "echo \"\"'s'\"\" 100% %Q % | cat"]
        );
    }

    #[test]
    fn empty_values_stay_one_argument() {
        let m = parse("printf '[%s]' %F %T | cat").unwrap();
        let args = expand(&m, "", "");
        let out = Command::new(&args[0]).args(&args[1..]).output().unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), "[][]");
        let m = parse("x %F").unwrap();
        assert_eq!(expand(&m, "", ""), ["x", ""]);
    }
}
