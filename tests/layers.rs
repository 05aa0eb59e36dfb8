//! The house rules of src/, checked on the source text: the modules import
//! one another in one direction only (no circle), the lower layers never
//! reach up (the protocols, the destinations and the ledger know nothing of
//! the command line, the config, the run, the schedule or the terminal),
//! every call into the C library is in src/platform/, and no file holds
//! more than 600 lines of code besides its tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every .rs file under src/, with its text up to its unit tests.
fn sources() -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                let code = match text.find("#[cfg(test)]\nmod tests") {
                    Some(i) => text[..i].to_string(),
                    None => text,
                };
                out.push((p.strip_prefix(&root).unwrap().to_path_buf(), code));
            }
        }
    }
    out.sort();
    out
}

/// The top-level module a file belongs to (`imap` for `imap/session.rs`).
fn module_of(rel: &Path) -> String {
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// The crate's own modules each names, in `crate::x` paths and in `use
/// crate::{x, y}` lists (comments left out).
fn imports(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(list) = rest.strip_prefix('{') {
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let name = item.trim().split("::").next().unwrap_or("");
                    if !name.is_empty() {
                        out.insert(name.to_string());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let files = sources();
    let modules: BTreeSet<String> = files.iter().map(|(p, _)| module_of(p)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, code) in &files {
        let m = module_of(path);
        if m == "lib" || m == "main" {
            continue;
        }
        let deps: Vec<String> = imports(code)
            .into_iter()
            .filter(|d| *d != m && modules.contains(d) && d != "fuzzing")
            .collect();
        g.entry(m).or_default().extend(deps);
    }
    g
}

#[test]
fn no_module_imports_in_a_circle() {
    let g = graph();
    // Depth-first search for a path back to where it started.
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for m in g.keys() {
        if let Some(c) = visit(&g, m, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", c.join(" -> "));
        }
    }
    // The check sees imports at all (a parser that found none would pass).
    assert!(
        g["run"].contains("ledger") && g["imap"].contains("net"),
        "{g:?}"
    );
}

#[test]
fn lower_layers_never_reach_up() {
    let g = graph();
    let upper = [
        "cli", "config", "run", "schedule", "report", "generate", "password", "import",
    ];
    for lower in [
        "imap", "pop3", "deliver", "ledger", "net", "wire", "durable", "platform", "types", "sasl",
        "oauth2",
    ] {
        let deps = &g[lower];
        for u in upper {
            assert!(!deps.contains(u), "{lower} imports {u}");
        }
    }
    assert!(
        !g["ledger"].contains("deliver"),
        "the ledger imports deliver"
    );
    for proto in ["imap", "pop3"] {
        assert!(!g["deliver"].contains(proto), "deliver imports {proto}");
    }
    // Reading fetchmail's and mpop's files needs no protocol.
    for proto in ["imap", "pop3", "net"] {
        assert!(!g["import"].contains(proto), "import imports {proto}");
    }
    assert!(g["types"].is_empty(), "types imports {:?}", g["types"]);
}

#[test]
fn every_libc_call_is_in_the_platform_module() {
    for (path, code) in sources() {
        if path.starts_with("platform") {
            continue;
        }
        let calls: Vec<&str> = code
            .lines()
            .filter(|l| !l.trim_start().starts_with("//") && l.contains("libc::"))
            .collect();
        assert!(calls.is_empty(), "{}: {calls:?}", path.display());
    }
}

#[test]
fn no_file_is_too_big_to_hold_in_one_head() {
    for (path, code) in sources() {
        let lines = code.lines().count();
        assert!(
            lines <= 600,
            "{} has {lines} lines of code besides its tests",
            path.display()
        );
    }
}
