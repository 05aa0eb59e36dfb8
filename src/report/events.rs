//! The `--json` events: typed, serialized with serde, one per line on
//! stdout, and documented once, in [`SCHEMA`], from which the man page's
//! JSON OUTPUT section is made (`generate.rs`). A unit test holds the
//! types and the schema together; the integration tests check every event
//! the program prints against the schema ([`check`]).

use serde::Serialize;

/// One event.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event<'a> {
    Message(Message<'a>),
    Account(AccountEvent<'a>),
    Error(ErrorEvent<'a>),
    Authorize(AuthorizeEvent<'a>),
}

/// `--login`: what the user must open (and, device flow, the code to type).
#[derive(Debug, Clone, Serialize)]
pub struct AuthorizeEvent<'a> {
    pub account: &'a str,
    pub url: &'a str,
    pub user_code: Option<&'a str>,
}

/// A message delivered, skipped, or (`--dry-run`) what a run would do.
#[derive(Debug, Clone, Serialize)]
pub struct Message<'a> {
    pub account: &'a str,
    pub folder: Option<&'a str>,
    pub uid: Option<&'a str>,
    pub size: u64,
    pub destination: Option<&'a str>,
    pub action: Action,
    pub reason: Option<&'a str>,
}

/// What became of a message, or would; in events as its [`Action::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Delivered,
    Skipped,
    Rejected,
    WouldFetch,
    WouldDelete,
    WouldMove,
    WouldFlag,
    WouldRemoveLocal,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Delivered,
        Action::Skipped,
        Action::Rejected,
        Action::WouldFetch,
        Action::WouldDelete,
        Action::WouldMove,
        Action::WouldFlag,
        Action::WouldRemoveLocal,
    ];

    /// The name in events (and in `-v` lines).
    pub fn name(self) -> &'static str {
        ACTION_NAMES[self as usize]
    }
}

/// The actions' names, in [`Action`]'s order: what events carry and what
/// [`SCHEMA`] lists.
const ACTION_NAMES: [&str; 8] = [
    "delivered",
    "skipped",
    "rejected",
    "would_fetch",
    "would_delete",
    "would_move",
    "would_flag",
    "would_remove_local",
];

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One account's run, last of its events.
#[derive(Debug, Clone, Serialize)]
pub struct AccountEvent<'a> {
    pub account: &'a str,
    pub fetched: usize,
    pub bytes: u64,
    pub deleted: usize,
    pub flags_synced: usize,
    pub new: Option<usize>,
    pub would_delete: Option<usize>,
    pub would_flag: Option<usize>,
    pub seconds: f64,
    pub exit_code: i32,
}

/// A failed account, before its account event.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEvent<'a> {
    pub account: &'a str,
    pub kind: &'a str,
    pub message: &'a str,
}

/// A JSON type a field may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
}

/// One documented field.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub ty: Type,
    pub nullable: bool,
    /// Only these values (for a string), when not empty.
    pub values: &'static [&'static str],
    pub about: &'static str,
}

/// One documented event type.
#[derive(Debug)]
pub struct Doc {
    pub name: &'static str,
    pub about: &'static str,
    pub fields: &'static [Field],
}

const fn field(name: &'static str, ty: Type, nullable: bool, about: &'static str) -> Field {
    Field {
        name,
        ty,
        nullable,
        values: &[],
        about,
    }
}

/// Every event and field, as the man page documents them: a stable
/// interface (fields may be added; none is removed or changes meaning).
pub const SCHEMA: &[Doc] = &[
    Doc {
        name: "message",
        about: "A message delivered or left alone, or with --dry-run what a run would do with it.",
        fields: &[
            field("account", Type::String, false, "the account's name"),
            field(
                "folder",
                Type::String,
                true,
                "the IMAP folder's name, decoded; null for POP3",
            ),
            field(
                "uid",
                Type::String,
                true,
                "the UIDL or IMAP UID, as a string; null for a POP3 server without UIDL",
            ),
            field("size", Type::Integer, false, "bytes"),
            field(
                "destination",
                Type::String,
                true,
                "a file path, MBOX@OFFSET, the MDA command, or \"-\" for stdout; null when nothing was delivered",
            ),
            Field {
                name: "action",
                ty: Type::String,
                nullable: false,
                values: &ACTION_NAMES,
                about: "delivered, skipped (larger than --max-size), or rejected (an LMTP or SMTP server refused it for good: it stays on the server, not offered again until --retry-rejected); with --dry-run, what a run would do: fetch, delete or move it on the server, sync its flags (either way), or remove the local copy (--sync-deletes)",
            },
            field(
                "reason",
                Type::String,
                true,
                "with rejected: why, with the mail server's words; else null",
            ),
        ],
    },
    Doc {
        name: "account",
        about: "One per account, last.",
        fields: &[
            field("account", Type::String, false, "the account's name"),
            field("fetched", Type::Integer, false, "messages delivered"),
            field("bytes", Type::Integer, false, "bytes delivered"),
            field(
                "deleted",
                Type::Integer,
                false,
                "messages deleted (or moved) on the server",
            ),
            field(
                "flags_synced",
                Type::Integer,
                false,
                "messages whose flags were synced",
            ),
            field(
                "new",
                Type::Integer,
                true,
                "with --check or --dry-run: messages waiting; else null",
            ),
            field(
                "would_delete",
                Type::Integer,
                true,
                "with --dry-run: messages that would be deleted or moved on the server; else null",
            ),
            field(
                "would_flag",
                Type::Integer,
                true,
                "with --dry-run: messages whose flags would be synced; else null",
            ),
            field("seconds", Type::Number, false, "how long the account took"),
            field(
                "exit_code",
                Type::Integer,
                false,
                "the account's exit status (see EXIT STATUS)",
            ),
        ],
    },
    Doc {
        name: "authorize",
        about: "With --login: the URL to open in a browser (device flow: where to type user_code).",
        fields: &[
            field("account", Type::String, false, "the account's name"),
            field("url", Type::String, false, "the URL to open"),
            field(
                "user_code",
                Type::String,
                true,
                "device flow: the code to enter at url; null for the browser flow",
            ),
        ],
    },
    Doc {
        name: "error",
        about: "Before the account event of a failed account.",
        fields: &[
            field("account", Type::String, false, "the account's name"),
            Field {
                name: "kind",
                ty: Type::String,
                nullable: false,
                values: &[
                    "usage",
                    "data",
                    "unavailable",
                    "internal",
                    "cant_create",
                    "local_io",
                    "temporary",
                    "protocol",
                    "auth",
                    "config",
                ],
                about: "what kind of failure (each has its exit status)",
            },
            field(
                "message",
                Type::String,
                false,
                "what went wrong, as the line on standard error says it",
            ),
        ],
    },
];

/// Whether `line` is one event as [`SCHEMA`] documents it: a known type,
/// every documented field present with its type, no other field. The
/// reason when not.
pub fn check(line: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("not an object: {line}"))?;
    let ty = obj
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| format!("no type: {line}"))?;
    let doc = SCHEMA
        .iter()
        .find(|d| d.name == ty)
        .ok_or_else(|| format!("undocumented event type {ty:?}: {line}"))?;
    for (k, val) in obj {
        if k == "type" {
            continue;
        }
        let f = doc
            .fields
            .iter()
            .find(|f| f.name == k)
            .ok_or_else(|| format!("undocumented field {k:?} in a {ty} event: {line}"))?;
        let ok = match (f.ty, val) {
            (_, serde_json::Value::Null) => f.nullable,
            (Type::String, serde_json::Value::String(s)) => {
                f.values.is_empty() || f.values.contains(&s.as_str())
            }
            (Type::Integer, serde_json::Value::Number(n)) => n.is_u64() || n.is_i64(),
            (Type::Number, serde_json::Value::Number(_)) => true,
            _ => false,
        };
        if !ok {
            return Err(format!(
                "field {k:?} of a {ty} event is not as documented ({:?}{}): {line}",
                f.ty,
                if f.nullable { " or null" } else { "" }
            ));
        }
    }
    if let Some(f) = doc.fields.iter().find(|f| !obj.contains_key(f.name)) {
        return Err(format!("a {ty} event lacks {:?}: {line}", f.name));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Kind;

    fn line(e: &Event) -> String {
        serde_json::to_string(e).unwrap()
    }

    #[test]
    fn every_event_the_types_can_make_is_as_documented() {
        for action in Action::ALL {
            for (folder, uid, dest, reason) in [
                (None, None, None, None),
                (Some("F"), Some("7"), Some("/m/x"), Some("550 no")),
            ] {
                let e = Event::Message(Message {
                    account: "a",
                    folder,
                    uid,
                    size: 3,
                    destination: dest,
                    action,
                    reason,
                });
                check(&line(&e)).unwrap();
                assert!(line(&e).contains(action.name()));
            }
        }
        for planned in [None, Some(2)] {
            let e = Event::Account(AccountEvent {
                account: "a",
                fetched: 1,
                bytes: 2,
                deleted: 0,
                flags_synced: 0,
                new: planned,
                would_delete: planned,
                would_flag: planned,
                seconds: 0.25,
                exit_code: 0,
            });
            check(&line(&e)).unwrap();
        }
        for user_code in [None, Some("WDJB-MJHT")] {
            let e = Event::Authorize(AuthorizeEvent {
                account: "a",
                url: "https://example.org/device",
                user_code,
            });
            check(&line(&e)).unwrap();
        }
        for kind in Kind::ALL {
            let e = Event::Error(ErrorEvent {
                account: "a",
                kind: kind.name(),
                message: "m",
            });
            if kind == Kind::PipeClosed {
                // Never an error event: a closed pipe ends the run quietly.
                assert!(check(&line(&e)).is_err());
            } else {
                check(&line(&e)).unwrap();
            }
        }
    }

    #[test]
    fn the_check_refuses_what_is_not_documented() {
        for bad in [
            r#"{"type":"other","account":"a"}"#,
            r#"{"type":"error","account":"a","kind":"auth"}"#,
            r#"{"type":"error","account":"a","kind":"auth","message":"m","extra":1}"#,
            r#"{"type":"error","account":"a","kind":"weird","message":"m"}"#,
            r#"{"type":"error","account":null,"kind":"auth","message":"m"}"#,
            r#"{"type":"account","account":"a","fetched":1.5,"bytes":0,"deleted":0,"flags_synced":0,"new":null,"would_delete":null,"would_flag":null,"seconds":0,"exit_code":0}"#,
            "[]",
            "x",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
    }
}
