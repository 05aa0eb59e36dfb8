//! The man page and shell completions, generated from the one CLI
//! definition (`cli.rs`) by the hidden `fetch --generate KIND`. The files in
//! `man/` and `completions/` are its output, committed; `scripts/regenerate`
//! rewrites them and `tests/generated.rs` fails when they are stale.
//!
//! The man page is clap_mangen's NAME, SYNOPSIS, DESCRIPTION and OPTIONS
//! (from the doc comments in `cli.rs`), then the hand-written sections of
//! `man/sections.roff`, into which the two tables that live in code are
//! put: the JSON events (`report/events.rs`) and the exit statuses
//! (`error.rs`).

use std::io::{self, Write};

use clap::CommandFactory;

use crate::cli::{Cli, Generated};
use crate::error::{SEVERAL_ACCOUNTS, exit_statuses};
use crate::report::events::{AccountEvent, Action, Event, Message, SCHEMA, Type};

/// The hand-written sections, in roff. Lines starting with `.\"` are
/// comments (left out); two of them mark where the generated parts go.
const SECTIONS: &str = include_str!("../man/sections.roff");

pub fn generate(kind: Generated, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = Cli::command();
    let shell = match kind {
        Generated::Man => return man(out),
        Generated::Bash => clap_complete::Shell::Bash,
        Generated::Zsh => clap_complete::Shell::Zsh,
        Generated::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "fetch", out);
    Ok(())
}

fn man(out: &mut dyn Write) -> io::Result<()> {
    let cmd = Cli::command();
    // No date: the page must be the same bytes on every build.
    let m = clap_mangen::Man::new(cmd)
        .manual("User Commands")
        .source(format!("fetch {}", env!("CARGO_PKG_VERSION")));
    m.render_title(out)?;
    m.render_name_section(out)?;
    m.render_synopsis_section(out)?;
    m.render_description_section(out)?;
    m.render_options_section(out)?;
    for line in SECTIONS.lines() {
        if line.starts_with(".\\\" @JSON EVENTS@") {
            json_events(out)?;
        } else if line.starts_with(".\\\" @EXIT STATUS@") {
            exit_status(out)?;
        } else if !line.starts_with(".\\\"") {
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// Every event type and field of [`SCHEMA`], then an example of each event
/// as the program prints it.
fn json_events(out: &mut dyn Write) -> io::Result<()> {
    for doc in SCHEMA {
        writeln!(out, ".TP\n{}\n{}\n.RS", doc.name, roff(doc.about))?;
        for f in doc.fields {
            let ty = match f.ty {
                Type::String => "string",
                Type::Integer => "integer",
                Type::Number => "number",
            };
            let null = if f.nullable { " or null" } else { "" };
            let mut about = f.about.to_string();
            if !f.values.is_empty() {
                about.push_str(&format!(". One of: {}.", f.values.join(", ")));
            }
            writeln!(out, ".TP\n{} ({ty}{null})\n{}", f.name, roff(&about))?;
        }
        writeln!(out, ".RE")?;
    }
    let examples = [
        Event::Message(Message {
            account: "work",
            folder: None,
            uid: Some("1a2b"),
            size: 2048,
            destination: Some("/home/a/Maildir/new/1764000000.M1P2Q1Fab12cd34.host,S=2048"),
            action: Action::Delivered,
            reason: None,
        }),
        Event::Account(AccountEvent {
            account: "work",
            fetched: 1,
            bytes: 2048,
            deleted: 1,
            flags_synced: 0,
            new: None,
            would_delete: None,
            would_flag: None,
            seconds: 0.21,
            exit_code: 0,
        }),
    ];
    writeln!(out, ".PP\nFor example:\n.PP\n.nf")?;
    for e in &examples {
        let line = serde_json::to_string(e).map_err(io::Error::other)?;
        writeln!(out, "{}", roff(&line))?;
    }
    writeln!(out, ".fi")
}

/// The exit statuses, and what several accounts make of them.
fn exit_status(out: &mut dyn Write) -> io::Result<()> {
    for (codes, meaning) in exit_statuses() {
        writeln!(out, ".TP\n{codes}\n{}", roff(meaning))?;
    }
    writeln!(out, ".PP\n{}", roff(SEVERAL_ACCOUNTS))
}

/// Plain text as roff: backslashes and dashes escaped, and a line that
/// would start with a control character protected.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn every_kind_generates() {
        for kind in Generated::value_variants() {
            let mut v = Vec::new();
            generate(*kind, &mut v).unwrap();
            assert!(v.len() > 500, "{kind:?}");
        }
        let mut v = Vec::new();
        generate(Generated::Man, &mut v).unwrap();
        let page = String::from_utf8(v).unwrap();
        for s in [
            ".SH NAME",
            ".SH OPTIONS",
            ".SH EXIT STATUS",
            ".SH JSON OUTPUT",
            "\\-\\-password\\-command",
            "would_remove_local",
            "130, 143",
        ] {
            assert!(page.contains(s), "{s}");
        }
        assert!(!page.contains("@JSON EVENTS@") && !page.contains("@EXIT STATUS@"));
    }

    #[test]
    fn the_page_examples_are_valid_events() {
        let mut v = Vec::new();
        json_events(&mut v).unwrap();
        let text = String::from_utf8(v).unwrap();
        let examples: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| l.replace("\\-", "-").replace("\\e", "\\"))
            .collect();
        assert_eq!(examples.len(), 2);
        for e in examples {
            crate::report::events::check(&e).unwrap();
        }
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(roff("--check a\\b"), "\\-\\-check a\\eb");
        assert_eq!(roff(".x"), "\\&.x");
    }
}
