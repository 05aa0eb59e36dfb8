//! A scripted LMTP/SMTP server on 127.0.0.1, for the failures a real one
//! will not produce on demand: a 4xx or 5xx for one message, a connection
//! dropped before or after the final dot, a stall, a greeting that is not
//! 220. Each message (counted by MAIL FROM, over all connections) gets the
//! [`Step`] at its index, [`Step::Accept`] once they run out. It records
//! every command line and the DATA (dot-stuffing undone, CRLF kept) of
//! every message whose data it read to the end, whatever it then answered.
//! Connections end by themselves (a 10 s read timeout); dropping the
//! server stops accepting.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the server does with one message.
#[derive(Clone, Debug)]
pub enum Step {
    /// 250 to everything.
    Accept,
    /// This reply (e.g. `"452 4.2.2 Mailbox full"`) to RCPT TO.
    Rcpt(&'static str),
    /// This reply to the end of the data.
    Final(&'static str),
    /// Close the connection after the first line of the data.
    DropBeforeDot,
    /// Read all of the data, then close without a reply.
    DropAfterDot,
    /// Read all of the data, then say nothing for this long.
    Stall(Duration),
}

pub struct Config {
    pub greeting: &'static str,
    /// Offer STARTTLS (RFC 3207) and upgrade with this certificate.
    pub tls: Option<native_tls::TlsAcceptor>,
    /// Capability lines after the first line of the LHLO/EHLO reply.
    pub caps: Vec<&'static str>,
    pub steps: Vec<Step>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            greeting: "220 scripted ready",
            tls: None,
            caps: vec!["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"],
            steps: Vec::new(),
        }
    }
}

#[derive(Default)]
struct Shared {
    commands: Mutex<Vec<String>>,
    /// (message index, data) of each message read to its end.
    data: Mutex<Vec<(usize, Vec<u8>)>>,
    /// Messages answered 250 at the end of the data.
    accepted: AtomicUsize,
    next_message: AtomicUsize,
}

pub struct Mta {
    pub port: u16,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Mta {
    pub fn start(cfg: Config) -> Mta {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let cfg = Arc::new(cfg);
        let (sh, st) = (shared.clone(), stop.clone());
        let acceptor = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (sh, cfg) = (sh.clone(), cfg.clone());
                        std::thread::spawn(move || {
                            let _ = serve(s, &cfg, &sh);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Mta {
            port,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    pub fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
    }

    /// The data of every message read to its end: (index, bytes).
    pub fn data(&self) -> Vec<(usize, Vec<u8>)> {
        self.shared.data.lock().unwrap().clone()
    }

    /// How many messages got a 250 for their data so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// A handle that reads [`Mta::accepted`] from another thread.
    pub fn accepted_counter(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let sh = self.shared.clone();
        move || sh.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

/// The connection, plain or (after STARTTLS) TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<native_tls::TlsStream<TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

fn serve(s: TcpStream, cfg: &Config, sh: &Shared) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut r = BufReader::new(Stream::Plain(s));
    r.get_mut()
        .write_all(format!("{}\r\n", cfg.greeting).as_bytes())?;
    let mut step = Step::Accept;
    let mut index = 0;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        sh.commands.lock().unwrap().push(line.clone());
        let verb = line
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "LHLO" | "EHLO" => {
                let mut lines = vec!["scripted"];
                lines.extend(cfg.caps.iter().copied());
                if cfg.tls.is_some() && matches!(r.get_ref(), Stream::Plain(_)) {
                    lines.push("STARTTLS");
                }
                let n = lines.len();
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("250{}{l}\r\n", if i + 1 == n { ' ' } else { '-' }))
                    .collect()
            }
            "HELO" | "RSET" | "NOOP" => "250 2.0.0 ok\r\n".into(),
            "STARTTLS" if cfg.tls.is_some() && matches!(r.get_ref(), Stream::Plain(_)) => {
                r.get_mut().write_all(b"220 2.0.0 go ahead\r\n")?;
                let Stream::Plain(tcp) = r.into_inner() else {
                    unreachable!()
                };
                let tls = cfg
                    .tls
                    .as_ref()
                    .unwrap()
                    .accept(tcp)
                    .map_err(std::io::Error::other)?;
                r = BufReader::new(Stream::Tls(Box::new(tls)));
                sh.commands.lock().unwrap().push("[TLS]".into());
                continue;
            }
            "MAIL" => {
                index = sh.next_message.fetch_add(1, Ordering::SeqCst);
                step = cfg.steps.get(index).cloned().unwrap_or(Step::Accept);
                "250 2.1.0 ok\r\n".into()
            }
            "RCPT" => match &step {
                Step::Rcpt(reply) => format!("{reply}\r\n"),
                _ => "250 2.1.5 ok\r\n".into(),
            },
            "DATA" => {
                if matches!(step, Step::Rcpt(_)) {
                    r.get_mut()
                        .write_all(b"554 5.5.1 no valid recipients\r\n")?;
                    continue;
                }
                r.get_mut().write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut r, matches!(step, Step::DropBeforeDot))?;
                let Some(data) = data else {
                    return Ok(()); // dropped before the dot
                };
                sh.data.lock().unwrap().push((index, data));
                match &step {
                    Step::DropAfterDot => return Ok(()),
                    Step::Stall(d) => {
                        std::thread::sleep(*d);
                        return Ok(());
                    }
                    Step::Final(reply) => format!("{reply}\r\n"),
                    _ => {
                        sh.accepted.fetch_add(1, Ordering::SeqCst);
                        "250 2.0.0 delivered\r\n".into()
                    }
                }
            }
            "QUIT" => {
                r.get_mut().write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => "500 5.5.2 unknown command\r\n".into(),
        };
        r.get_mut().write_all(reply.as_bytes())?;
    }
}

/// The data up to the `.` line, unstuffed; None when `drop_early` (after
/// its first line).
fn read_data(r: &mut impl BufRead, drop_early: bool) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if drop_early {
            return Ok(None);
        }
        if line == b".\r\n" {
            return Ok(Some(out));
        }
        let line = line.strip_prefix(b".").unwrap_or(&line);
        out.extend_from_slice(line);
    }
}
