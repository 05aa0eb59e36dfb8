//! A connection shared between the `imap` crate and our own code.

use std::io::{self, Read, Write};
use std::rc::Rc;

use super::Conn;
use crate::error::Result;

/// A [`Conn`] shared between a protocol library that owns "its" stream
/// (the `imap` crate) and our own code, on one thread. Reads through it
/// hand out at most one line at a time, so the library's own read buffer
/// never holds bytes beyond the reply it asked for: once it has read a
/// tagged reply, the connection can be used directly (for streaming
/// bodies) and handed back. Errors carry our [`Error`] inside the
/// `io::Error`; get it back with [`from_io`].
///
/// Commands can also go ahead of the library ([`SharedConn::send_ahead`]):
/// sent at once, in one write with others (pipelining), while the library
/// still sends each command and reads its reply in turn. When the library
/// then writes such a command, the bytes must be exactly those sent ahead,
/// and are not sent again.
#[derive(Clone)]
pub struct SharedConn(Rc<std::cell::RefCell<Conn>>, Rc<std::cell::RefCell<Ahead>>);

/// What went ahead of the library, and the last tag it used.
#[derive(Default)]
struct Ahead {
    bytes: std::collections::VecDeque<u8>,
    last_tag: u32,
}

impl SharedConn {
    pub fn new(conn: Conn) -> SharedConn {
        SharedConn(
            Rc::new(std::cell::RefCell::new(conn)),
            Rc::new(std::cell::RefCell::new(Ahead::default())),
        )
    }

    /// Send `bytes` (whole commands of the library's, with the tags it will
    /// use) now, ahead of the library, which then writes them again.
    pub fn send_ahead(&self, bytes: &[u8]) -> Result<()> {
        self.0.borrow_mut().send(bytes)?;
        self.1.borrow_mut().bytes.extend(bytes);
        Ok(())
    }

    /// Bytes sent ahead that the library has not written yet.
    pub fn ahead(&self) -> usize {
        self.1.borrow().bytes.len()
    }

    /// The number in the last tag the library wrote (`a7` -> 7; the `imap`
    /// crate tags its commands `a1`, `a2`, ...).
    pub fn last_tag(&self) -> u32 {
        self.1.borrow().last_tag
    }

    /// Use the connection directly, between the library's commands.
    pub fn with<R>(&self, f: impl FnOnce(&mut Conn) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}

impl Read for SharedConn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut c = self.0.borrow_mut();
        if c.start == c.end {
            c.read_more().map_err(io::Error::other)?;
        }
        let avail = &c.buf[c.start..c.end];
        let lim = out.len().min(avail.len());
        let n = match avail[..lim].iter().position(|&b| b == b'\n') {
            Some(p) => p + 1,
            None => lim,
        };
        out[..n].copy_from_slice(&avail[..n]);
        c.consume(n);
        Ok(n)
    }
}

impl Write for SharedConn {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let mut ahead = self.1.borrow_mut();
        if let Some(tag) = data
            .strip_prefix(b"a")
            .and_then(|r| r.split(|&b| b == b' ').next())
            .filter(|t| !t.is_empty() && t.iter().all(u8::is_ascii_digit))
            .and_then(|t| std::str::from_utf8(t).ok()?.parse().ok())
        {
            ahead.last_tag = tag;
        }
        if ahead.bytes.is_empty() {
            self.0.borrow_mut().send(data).map_err(io::Error::other)?;
            return Ok(data.len());
        }
        // Already sent: the same bytes, or the connection is out of step.
        let n = data.len().min(ahead.bytes.len());
        if !ahead.bytes.iter().take(n).eq(data[..n].iter()) {
            return Err(io::Error::other(crate::error::internal(
                "a command differs from the one sent ahead of it",
            )));
        }
        ahead.bytes.drain(..n);
        if n < data.len() {
            self.0
                .borrow_mut()
                .send(&data[n..])
                .map_err(io::Error::other)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
