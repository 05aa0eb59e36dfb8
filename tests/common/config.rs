//! The config file as tests write it: where fetch looks for it by default,
//! and an account section for the scripted POP3 server.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use super::Env;

/// Writes the default config file (`$XDG_CONFIG_HOME/fetch/config.toml`)
/// with permissions `mode`; returns its path.
pub fn write_config(env: &Env, text: &str, mode: u32) -> PathBuf {
    let dir = env.path().join("config/fetch");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("config.toml");
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// `[accounts.<name>]` for the scripted POP3 server on `port` (plaintext
/// login allowed, a 5 s timeout), delivering into `Mail-<name>` in the
/// test's directory, followed by the lines in `extra`.
pub fn account(name: &str, port: u16, user: &str, extra: &str, env: &Env) -> String {
    format!(
        "[accounts.{name}]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n\
         allow_plaintext_auth = true\nuser = \"{user}\"\ntimeout = 5\n\
         maildir = \"{}/Mail-{name}\"\n{extra}\n",
        env.path().display()
    )
}
