//! The committed man page and completions are exactly what the CLI
//! definition generates; run scripts/regenerate after changing src/cli.rs
//! or src/generate.rs.

mod common;

use std::path::Path;

use common::require::{program_missing, require};

#[test]
fn man_page_and_completions_are_current() {
    let env = common::Env::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (kind, file) in [
        ("man", "man/fetch.1"),
        ("bash", "completions/fetch.bash"),
        ("zsh", "completions/_fetch"),
        ("fish", "completions/fetch.fish"),
    ] {
        let out = env.run(&["--generate", kind]);
        assert_eq!(out.code, 0, "{out:?}");
        let committed = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        assert!(
            out.stdout == committed,
            "{file} is stale: run scripts/regenerate and commit the result"
        );
    }
}

#[test]
fn man_page_renders_without_warnings() {
    if !require("groff", program_missing("groff", &["--version"])) {
        return;
    }
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/fetch.1");
    let out = std::process::Command::new("groff")
        .args(["-man", "-ww", "-z"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
}

/// README.md's table of exit statuses says what the code's one table says
/// (`fetch::error::exit_statuses`, from which `--help` and the man page
/// are made).
#[test]
fn readme_exit_statuses_match_the_code() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut want = String::from("| code | meaning |\n|---|---|\n");
    for (codes, meaning) in fetch::error::exit_statuses() {
        want.push_str(&format!("| {codes} | {meaning} |\n"));
    }
    want.push('\n');
    want.push_str(fetch::error::SEVERAL_ACCOUNTS);
    let at = readme
        .find("| code | meaning |")
        .expect("README.md has a table of exit statuses");
    // The table and the paragraph after it.
    let found: Vec<&str> = readme[at..].splitn(3, "\n\n").take(2).collect();
    let found = found.join("\n\n");
    assert!(
        found.split_whitespace().eq(want.split_whitespace()),
        "README.md's exit statuses differ from src/error.rs; write them as:\n{want}"
    );
    // --help prints the same table.
    let out = common::Env::new().run(&["--help"]);
    for (codes, _) in fetch::error::exit_statuses() {
        assert!(out.stdout.contains(&format!("  {codes} ")), "{codes}");
    }
}
