//! A parsed `.fetchmailrc` turned into fetch's accounts: what each
//! fetchmail option means here, or why it has no meaning here. fetchmail's
//! `defaults` entry is folded into the entries after it (as fetchmail
//! does), so each account stands alone. `render.rs` writes the result as
//! TOML. No I/O.

use super::rcfile::{Opt, PollKind, RcFile, Value};

/// What `--import-fetchmailrc` knows beyond the file.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The file, as the header comment names it.
    pub source: &'a str,
    /// The user running the import: fetchmail's local recipient when the
    /// rc names none.
    pub local_user: Option<&'a str>,
}

/// One fetchmail user entry, as fetch will see it.
#[derive(Debug, Clone, Default)]
pub struct Acc {
    /// The account's name in the config file.
    pub name: String,
    /// Where it came from, for the comment above it.
    pub origin: String,
    /// `skip` entry, or one fetch cannot serve: written commented out.
    pub inactive: Option<String>,
    /// `key = value` lines, value already TOML.
    pub keys: Vec<(&'static str, String)>,
    /// Comments to keep beside the keys (without `# `).
    pub notes: Vec<String>,
    /// `(keyword, why)` for what is not carried over.
    pub dropped: Vec<(String, String)>,
    /// The rc holds a password for it (never copied).
    pub had_password: bool,
    /// The login name, when known.
    pub login: Option<String>,
}

/// The whole conversion: accounts plus file-wide notes.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    pub notes: Vec<String>,
    pub dropped: Vec<(String, String)>,
    pub accounts: Vec<Acc>,
}

impl Converted {
    pub fn passwords(&self) -> usize {
        self.accounts.iter().filter(|a| a.had_password).count()
    }
}

/// A TOML string.
pub(super) fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Why an option has no counterpart in fetch (None: it has one).
fn why_dropped(key: &str) -> Option<&'static str> {
    Some(match key {
        "aka" | "localdomains" | "dns" | "checkalias" | "envelope" | "qvirtual"
        | "fetchdomains" | "smtpaddress" | "smtpname" => {
            "multidrop addressing: fetch delivers an account's mail to one place, unchanged"
        }
        "principal" | "esmtpname" | "esmtppassword" => {
            "fetch has no Kerberos principal or SMTP AUTH login"
        }
        "interval" => "fetch polls every account at each --daemon interval",
        "interface" | "monitor" => "fetch does not watch network interfaces",
        "preconnect" | "postconnect" => {
            "fetch runs no command around a poll; run it from a wrapper script"
        }
        "plugout" => "fetch hands mail over itself",
        "tracepolls" | "rewrite" | "forcecr" | "stripcr" | "pass8bits" | "dropstatus"
        | "dropdelivered" | "mimedecode" | "bad-header" => {
            "fetch delivers each message as the server sent it (line ends made local)"
        }
        "antispam" => "fetch does not read SMTP replies for spam",
        "flush" | "limitflush" => "fetch deletes only what it delivered; old mail stays until then",
        "warnings" | "fetchsizelimit" | "fastuidl" | "batchlimit" | "expunge" | "properties"
        | "idletimeout" | "forceidle" => "no counterpart in fetch",
        "sslkey" | "sslcert" => "fetch does not log in with a client certificate",
        "sslcommonname" => "fetch checks the certificate against the host name it connects to",
        "sslcertpath" => "fetch reads extra CAs from one PEM file: cafile",
        _ => return None,
    })
}

/// Why a `set` statement has no counterpart (None: handled otherwise).
fn why_set_dropped(key: &str) -> &'static str {
    match key {
        "logfile" | "syslog" => {
            "fetch writes to stderr (the journal, under systemd); --json for programs"
        }
        "pidfile" => "fetch holds a lock per account instead",
        "postmaster" | "bouncemail" | "spambounce" | "softbounce" => {
            "fetch never bounces mail: what it cannot deliver stays on the server"
        }
        "invisible" => "fetch adds no header to the mail it delivers",
        "showdots" => "fetch draws a progress bar on a terminal",
        _ => "no counterpart in fetch",
    }
}

/// Convert a parsed rc file.
pub fn convert(rc: &RcFile, ctx: &Context) -> Converted {
    let mut out = Converted::default();
    for s in &rc.sets {
        let kw = format!("set {}{}", if s.negated { "no " } else { "" }, s.key);
        match (s.key, &s.value) {
            ("daemon", Value::Num(n)) if *n > 0 => out.notes.push(format!(
                "fetchmail ran as a daemon polling every {n} s (set daemon): run `fetch --daemon {n}`"
            )),
            ("daemon", _) => {}
            ("idfile", Value::Str(f)) => out.notes.push(format!(
                "fetchmail kept its UIDs in {f:?} (set idfile): see --import-uidls"
            )),
            (key, _) => out.dropped.push((kw, why_set_dropped(key).into())),
        }
    }
    let mut defaults: (Vec<Opt>, Vec<Opt>) = Default::default();
    let mut names: Vec<String> = Vec::new();
    for poll in &rc.polls {
        if poll.kind == PollKind::Defaults {
            defaults = (poll.server.clone(), poll.users.concat());
            continue;
        }
        let none = vec![Vec::new()];
        let users = if poll.users.is_empty() {
            &none
        } else {
            &poll.users
        };
        for user_opts in users {
            let opts: Vec<&Opt> = defaults
                .0
                .iter()
                .chain(&poll.server)
                .chain(&defaults.1)
                .chain(user_opts)
                .collect();
            let mut acc = account(&poll.name, &opts, ctx);
            if poll.kind == PollKind::Skip {
                acc.inactive.get_or_insert_with(|| {
                    "skip: fetchmail polled it only when named on its command line; \
                     remove the leading # to fetch it"
                        .into()
                });
            }
            let base = match (users.len(), &acc.login) {
                (1, _) | (_, None) => poll.name.clone(),
                (_, Some(u)) => format!("{u}@{}", poll.name),
            };
            acc.name = unique(&mut names, base);
            acc.origin = format!(
                "{} {:?}, {} line {}",
                match poll.kind {
                    PollKind::Skip => "skip",
                    _ => "poll",
                },
                poll.name,
                ctx.source,
                user_opts.first().map_or(poll.line, |o| o.line)
            );
            out.accounts.push(acc);
        }
    }
    out
}

/// `base`, or `base-2`, `base-3`... when an earlier account has it.
fn unique(names: &mut Vec<String>, base: String) -> String {
    let mut name = base.clone();
    let mut n = 1;
    while names.contains(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    names.push(name.clone());
    name
}

/// The settings fetchmail would use for one user, last one written wins.
#[derive(Default)]
struct Seen<'a> {
    via: Option<&'a str>,
    protocol: Option<&'a str>,
    port: Option<&'a Value>,
    auth: Option<&'a str>,
    timeout: Option<i64>,
    plugin: bool,
    user: Option<&'a str>,
    local: Option<&'a [(String, Option<String>)]>,
    password: bool,
    ssl: Option<bool>,
    sslproto: Option<&'a str>,
    certck: Option<bool>,
    certfile: Option<&'a str>,
    fingerprint: Option<&'a str>,
    keep: Option<bool>,
    fetchall: Option<bool>,
    folders: Option<&'a [String]>,
    mda: Option<&'a str>,
    bsmtp: bool,
    smtphost: Option<&'a [String]>,
    lmtp: bool,
    limit: Option<i64>,
    fetchlimit: Option<i64>,
    idle: Option<bool>,
    uidl: Option<bool>,
    dropped: Vec<(String, String)>,
}

fn account(poll_name: &str, opts: &[&Opt], ctx: &Context) -> Acc {
    let mut s = Seen::default();
    for o in opts {
        let on = !o.negated;
        match (o.key, &o.value) {
            ("via", Value::Str(v)) => s.via = Some(v),
            ("protocol", Value::Str(p)) => s.protocol = Some(p),
            ("port" | "service", v) => s.port = Some(v),
            ("auth", Value::Str(a)) => s.auth = Some(a),
            ("timeout", Value::Num(n)) => s.timeout = Some(*n),
            ("plugin", _) => s.plugin = true,
            ("user", Value::Str(u)) => s.user = Some(u),
            ("user" | "is" | "to", Value::Names(n)) => s.local = Some(n),
            ("password", _) => s.password = true,
            ("ssl", _) => s.ssl = Some(on),
            ("sslproto", Value::Str(p)) => s.sslproto = Some(p),
            ("sslcertck", _) => s.certck = Some(on),
            ("sslcertfile", Value::Str(f)) => s.certfile = Some(f),
            ("sslfingerprint", Value::Str(f)) => s.fingerprint = Some(f),
            ("keep", _) => s.keep = Some(on),
            ("fetchall", _) => s.fetchall = Some(on),
            ("folder", Value::List(f)) => s.folders = Some(f),
            ("mda", Value::Str(m)) => s.mda = Some(m),
            ("bsmtp", _) => s.bsmtp = true,
            ("smtphost", Value::List(h)) => s.smtphost = Some(h),
            ("lmtp", _) => s.lmtp = on,
            ("limit", Value::Num(n)) => s.limit = Some(*n),
            ("fetchlimit", Value::Num(n)) => s.fetchlimit = Some(*n),
            ("idle", _) => s.idle = Some(on),
            ("uidl", _) => s.uidl = Some(on),
            (key, _) => {
                if let Some(why) = why_dropped(key) {
                    let kw = if o.negated {
                        format!("no {key}")
                    } else {
                        key.to_string()
                    };
                    if !s.dropped.iter().any(|(k, _)| *k == kw) {
                        s.dropped.push((kw, why.into()));
                    }
                }
            }
        }
    }
    build(poll_name, s, ctx)
}

fn build(poll_name: &str, s: Seen, ctx: &Context) -> Acc {
    let mut a = Acc {
        dropped: s.dropped.clone(),
        had_password: s.password,
        ..Acc::default()
    };

    // Protocol.
    let proto = s.protocol.unwrap_or("auto");
    let imap = match proto {
        "imap" => true,
        "pop3" | "apop" | "rpop" => false,
        "auto" => {
            a.notes.push(
                "fetchmail's protocol auto tries IMAP, then POP3: if this server has no \
                 IMAP, say protocol = \"pop3\""
                    .into(),
            );
            true
        }
        other => {
            a.inactive = Some(format!("protocol {other}: fetch speaks POP3 and IMAP only"));
            false
        }
    };
    a.keys
        .push(("protocol", q(if imap { "imap" } else { "pop3" })));
    a.keys.push(("host", q(s.via.unwrap_or(poll_name))));
    if s.plugin {
        a.inactive = Some(
            "plugin: fetch connects to the server itself and runs no command as its \
             connection; to reach the server through a tunnel, forward a local port \
             (ssh -L) and point host and port at it"
                .into(),
        );
    }
    match s.port {
        Some(Value::Num(n)) if (1..=65535).contains(n) => a.keys.push(("port", n.to_string())),
        Some(Value::Str(name)) => match known_service(name) {
            Some(n) => a.keys.push(("port", n.to_string())),
            None => lose(&mut a, "service", "not a port number fetch knows"),
        },
        Some(_) => lose(&mut a, "port", "not a port number"),
        None => {}
    }
    // Login.
    // fetchmail logs in as the local user when the rc names nobody.
    a.login = s.user.or(ctx.local_user).map(String::from);
    if let Some(u) = &a.login {
        a.keys.push(("user", q(u)));
    }
    match (proto, s.auth) {
        ("apop", _) => a.keys.push(("auth", q("apop"))),
        ("rpop", _) => lose(
            &mut a,
            "protocol rpop",
            "fetch logs in with a password; RPOP's trust in privileged ports is gone",
        ),
        (_, None | Some("password" | "any")) => {}
        (_, Some(other)) => lose(
            &mut a,
            &format!("auth {other}"),
            "fetch logs in with a user name and password (SASL PLAIN, USER/PASS, LOGIN), over TLS",
        ),
    }
    if s.uidl == Some(false) {
        lose(
            &mut a,
            "no uidl",
            "fetch always tells POP3 messages apart by UIDL",
        );
    }
    tls(&mut a, &s);
    // What to fetch, and what then happens on the server.
    let keep = s.keep.unwrap_or(false);
    let fetchall = s.fetchall.unwrap_or(false);
    if imap {
        if !keep {
            a.keys.push(("delete", "true".into()));
            a.notes.push(
                "fetchmail deletes what it fetched unless told keep; so does this account \
                 (delete = true)"
                    .into(),
            );
        }
        if !fetchall {
            a.keys.push(("search", q("UNSEEN")));
            a.notes.push(
                "fetchmail takes only unread messages unless told fetchall (search = \"UNSEEN\")"
                    .into(),
            );
        }
        if let Some(f) = s.folders {
            let list: Vec<toml::Value> = f.iter().map(|x| toml::Value::String(x.clone())).collect();
            a.keys
                .push(("folders", toml::Value::Array(list).to_string()));
        }
    } else {
        a.keys.push(("keep", keep.to_string()));
        if fetchall {
            a.keys.push(("all", "true".into()));
        }
        if s.folders.is_some() {
            lose(&mut a, "folder", "a POP3 server has one mailbox");
        }
    }
    if let Some(n) = s.limit.filter(|n| *n > 0) {
        a.keys.push(("max_size", n.to_string()));
    }
    if let Some(n) = s.fetchlimit.filter(|n| *n > 0) {
        a.keys.push(("limit", n.to_string()));
    }
    if let Some(n) = s.timeout.filter(|n| *n > 0) {
        a.keys.push(("timeout", n.to_string()));
    }
    destination(&mut a, &s, ctx);
    if s.idle == Some(true) {
        if imap {
            a.notes.push(
                "idle: run `fetch --idle` (with --daemon SECONDS) to fetch new mail as it \
                 arrives, in every chosen folder"
                    .into(),
            );
        } else {
            lose(&mut a, "idle", "IDLE is IMAP's; POP3 accounts are polled");
        }
    }
    a
}

/// The port of a service name fetchmail might be given.
fn known_service(name: &str) -> Option<u16> {
    match name {
        "pop3" | "pop-3" => Some(110),
        "pop3s" => Some(995),
        "imap" | "imap2" | "imap4" => Some(143),
        "imaps" => Some(993),
        _ => name.parse().ok().filter(|&n| n > 0),
    }
}

/// Record that `kw` is not carried over, and why.
fn lose(a: &mut Acc, kw: &str, why: &str) {
    a.dropped.push((kw.into(), why.into()));
}

fn tls(a: &mut Acc, s: &Seen) {
    let proto = s.sslproto.map(str::to_ascii_lowercase);
    let mode = match (s.ssl, proto.as_deref()) {
        (Some(true), _) => "implicit",
        (_, Some("")) => "none",
        _ => "starttls",
    };
    a.keys.push(("tls", q(mode)));
    match (mode, proto.as_deref()) {
        ("none", _) => {
            a.notes.push(
                "fetchmail was told sslproto \"\": no TLS at all. fetch sends a password \
                 without TLS only when also told:"
                    .into(),
            );
            a.notes.push("allow_plaintext_auth = true".into());
        }
        ("starttls", None) => a.notes.push(
            "fetchmail used STARTTLS when the server offered it; fetch insists on it \
             (tls = \"starttls\")"
                .into(),
        ),
        _ => {}
    }
    if let Some(p) = proto.as_deref()
        && !matches!(
            p,
            "" | "auto" | "ssl23" | "tls1+" | "tls1.1+" | "tls1.2+" | "ssl3+"
        )
    {
        lose(
            a,
            &format!("sslproto {p}"),
            "fetch lets OpenSSL choose the TLS version",
        );
    }
    if s.certck == Some(false) {
        lose(
            a,
            "no sslcertck",
            "fetch always checks certificates; for a self-signed one, run `fetch --show-cert` \
             and pin the SHA-256 it prints: fingerprint = \"...\"",
        );
    }
    if let Some(f) = s.certfile {
        a.keys.push(("cafile", q(f)));
    }
    if let Some(fp) = s.fingerprint {
        let hex: String = fp.chars().filter(|c| *c != ':').collect();
        let valid = hex.bytes().all(|b| b.is_ascii_hexdigit());
        match hex.len() {
            64 if valid => a.keys.push(("fingerprint", q(&hex.to_ascii_lowercase()))),
            32 if valid => lose(
                a,
                "sslfingerprint",
                "an MD5 fingerprint cannot be kept: re-pin with `fetch --show-cert`, which \
                 prints the SHA-256 to put in fingerprint = \"...\"",
            ),
            _ => lose(a, "sslfingerprint", "not an MD5 or SHA-256 fingerprint"),
        }
    }
}

/// Where mail goes: an MDA, or the mail system (SMTP/LMTP).
fn destination(a: &mut Acc, s: &Seen, ctx: &Context) {
    let local = match s.local {
        Some([(name, None)]) if name != "*" => Some(name.as_str()),
        Some(names) => {
            a.dropped.push((
                "is/to (several local names)".into(),
                format!(
                    "multidrop: fetch delivers an account's mail to one place; {} names were given",
                    names.len()
                ),
            ));
            None
        }
        None => None,
    };
    if s.bsmtp {
        a.inactive = Some(
            "bsmtp: fetch does not write BSMTP batches; give it mda, maildir or mbox instead"
                .into(),
        );
        return;
    }
    if let Some(mda) = s.mda {
        a.keys.push((
            "mda",
            q(&mda_command(mda, local.or(ctx.local_user), s.user)),
        ));
        return;
    }
    super::render::mail_system_keys(a, s.smtphost.unwrap_or(&[]), s.lmtp, local);
}

/// fetchmail's `%T` is the local recipient; fetch's is the account's
/// login. Where the two differ, the name is written into the command (if
/// it is a plain name, safe in any shell word); `%F` means the same in both.
fn mda_command(mda: &str, local: Option<&str>, remote: Option<&str>) -> String {
    match local {
        Some(l)
            if Some(l) != remote
                && !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+@".contains(&b)) =>
        {
            mda.replace("%T", l)
        }
        _ => mda.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mda_gets_the_local_name() {
        assert_eq!(
            mda_command("procmail -d %T", Some("bob"), Some("robert.smith")),
            "procmail -d bob"
        );
        assert_eq!(
            mda_command("procmail -d %T", Some("bob"), Some("bob")),
            "procmail -d %T"
        );
        assert_eq!(
            mda_command("procmail -d %T", Some("b;rm -rf"), Some("x")),
            "procmail -d %T"
        );
    }

    #[test]
    fn services() {
        assert_eq!(known_service("pop3s"), Some(995));
        assert_eq!(known_service("2110"), Some(2110));
        assert_eq!(known_service("kpop"), None);
    }
}
