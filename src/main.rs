//! `fetch`: parse the command line, run each account, turn the outcome into
//! an exit code. Nothing else happens here; the work is in the library
//! (`lib.rs`), whose map is there.

use clap::Parser;
use clap::error::ErrorKind;
use fetch::config::Mode;
use fetch::{cli, config, error, generate, import, report, schedule, signals};

fn main() {
    std::process::exit(real_main());
}

fn real_main() -> i32 {
    fetch::platform::restrict_umask();
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
    if let Some(path) = &cli.import_fetchmailrc {
        return exit_code(import::run_fetchmailrc(path.as_deref()));
    }
    let plan = match config::resolve(&cli) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fetch: {e}");
            return e.kind.exit_code();
        }
    };
    if let Some(path) = &cli.import_uidls {
        return exit_code(import::run_uidls(path, &plan.accounts));
    }
    if cli.list_accounts {
        return exit_code(report::list_accounts(&plan.accounts));
    }
    drop(cli);
    signals::install();
    let ui = report::Ui::new(plan.output);
    if let Some((shard, total)) = plan.shard {
        ui.detail(
            "fetch",
            &format!(
                "shard {shard} runs {} of the {total} account(s) chosen",
                plan.accounts.len()
            ),
        );
    }
    if plan.mode == Mode::Login {
        return fetch::run::login::all(&plan.accounts, &ui);
    }
    if let Some(daemon) = plan.daemon {
        return schedule::daemon(&plan.accounts, plan.jobs, daemon, &ui);
    }
    let results = schedule::once(&plan.accounts, plan.jobs, &ui);
    let codes: Vec<i32> = results.iter().map(|r| r.0).collect();
    let code = error::combine(&codes);
    if let Some(sig) = signals::received() {
        // Stopped early: what arrived is safe, but not all mail was fetched.
        return 128 + sig;
    }
    if plan.mode == Mode::Check && code == 0 && !results.iter().any(|r| r.1) {
        return 1; // --check: no new mail
    }
    code
}

/// A one-off command's result as an exit code, its error on stderr.
fn exit_code(result: error::Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fetch: {e}");
            e.kind.exit_code()
        }
    }
}
