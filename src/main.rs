//! `fetch`: parse the command line, run each account, turn the outcome into
//! an exit code. Nothing else happens here; the work is in the library
//! (`lib.rs`), whose map is there.

use clap::Parser;
use clap::error::ErrorKind;
use fetch::{cli, config, error, generate, run, ui};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    // Files we create are 0600 and directories 0700, whatever the caller's
    // umask: every create asks for exactly those modes, and nothing is
    // masked off them.
    // SAFETY: umask only sets the process's file mode creation mask.
    unsafe { libc::umask(0o077) };
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => error::Kind::Usage.exit_code(),
            };
        }
    };
    if let Some(kind) = cli.generate {
        let mut out = std::io::stdout().lock();
        return match generate::generate(kind, &mut out) {
            Ok(()) => 0,
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
            Err(e) => {
                eprintln!("fetch: writing the output: {e}");
                error::Kind::LocalIo.exit_code()
            }
        };
    }
    let (accounts, output) = match config::resolve(&cli) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("fetch: {}", e.msg);
            return e.kind.exit_code();
        }
    };
    let ui = ui::Ui::new(output);
    let mut codes = Vec::with_capacity(accounts.len());
    let mut new_mail = false;
    for acct in &accounts {
        let started = std::time::Instant::now();
        let (summary, code) = match run::run(acct, &ui) {
            Ok(summary) => {
                if cli.check {
                    new_mail |= summary.available > 0;
                    if !ui.json {
                        // --check's answer is data: stdout.
                        println!("{}: {} new", acct.name, summary.available);
                    }
                } else if !cli.show_cert {
                    ui.info(&acct.name, &summary.line());
                }
                (summary, 0)
            }
            Err(e) if e.kind == error::Kind::PipeClosed => (run::Summary::default(), 0),
            Err(e) => {
                ui.error(&acct.name, &e.msg);
                ui.event(serde_json::json!({
                    "type": "error",
                    "account": acct.name,
                    "kind": e.kind.name(),
                    "message": e.msg,
                }));
                (run::Summary::default(), e.kind.exit_code())
            }
        };
        ui.event(serde_json::json!({
            "type": "account",
            "account": acct.name,
            "fetched": summary.fetched,
            "bytes": summary.bytes,
            "deleted": summary.deleted,
            "flags_synced": summary.flags_synced,
            "new": if cli.check { Some(summary.available) } else { None },
            "seconds": started.elapsed().as_secs_f64(),
            "exit_code": code,
        }));
        codes.push(code);
    }
    let code = error::combine(&codes);
    if cli.check && code == 0 && !new_mail {
        return 1; // --check: no new mail
    }
    code
}
