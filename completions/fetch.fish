complete -c fetch -l config -d 'Read this config file instead of $XDG_CONFIG_HOME/fetch/config.toml' -r -F
complete -c fetch -l pop3 -d 'Fetch from this POP3 server (a one-shot account; no config file needed)' -r
complete -c fetch -l imap -d 'Fetch from this IMAP server (a one-shot account): new mail of the chosen folders, keeping flags in step both ways with a Maildir' -r
complete -c fetch -l folder -d 'IMAP: a folder to fetch; repeat for several [default: INBOX]' -r
complete -c fetch -l move-to -d 'IMAP: move fetched messages to this server folder once their local copies are committed' -r
complete -c fetch -l search -d 'IMAP: fetch only messages matching these IMAP SEARCH criteria, e.g. "UNSEEN" or "FROM alice SINCE 1-Nov-2026"' -r
complete -c fetch -l port -d 'Server port [default: POP3 995, or 110 with STLS or no TLS; IMAP 993, or 143]' -r
complete -c fetch -s u -l user -d 'Login name [default: $USER]' -r
complete -c fetch -l tls -d 'How to protect the connection: TLS from the first byte, a mandatory STLS upgrade, or none (then a password is only sent with --allow-plaintext-auth)' -r -f -a "implicit\t'TLS from the first byte (RFC 8314)'
starttls\t'Plain connection upgraded with STLS; fails if the server does not offer it'
none\t'No encryption'"
complete -c fetch -l auth -d 'Login method: auto (SASL PLAIN when offered, else USER/PASS), or force one. APOP is only used when asked for' -r -f -a "auto\t'SASL PLAIN if the server offers it, else USER/PASS'
plain\t'SASL PLAIN (RFC 5034)'
user\t'USER and PASS (RFC 1939)'
apop\t'APOP (RFC 1939 section 7); needs a timestamp in the server greeting'
xoauth2\t'SASL XOAUTH2 with an OAuth 2.0 access token (Google, Microsoft)'
oauthbearer\t'SASL OAUTHBEARER (RFC 7628) with an OAuth 2.0 access token'"
complete -c fetch -l password-command -d 'Shell command that prints the password (with --auth xoauth2 or oauthbearer, the access token: oama, mutt_oauth2.py); the first line of its output is used. Without it, fetch asks on the terminal' -r
complete -c fetch -l cafile -d 'Also trust the certificate authorities in this PEM file' -r -F
complete -c fetch -l maildir -d 'Deliver into this Maildir (created if missing) [default: ~/Maildir]' -r
complete -c fetch -l mbox -d 'Append to this mbox file (mboxrd format), locked with a dotlock and fcntl' -r
complete -c fetch -l mda -d 'Hand each message to this command on its stdin (e.g. "procmail -d %T"); exit status 0 means delivered. %F is the envelope sender, %T the user' -r
complete -c fetch -l lmtp -d 'Hand each message to this LMTP server (RFC 2033): a unix socket path (Dovecot\'s is /var/run/dovecot/lmtp) or HOST:PORT. Delivered means the server accepted it for the recipient (see --deliver-to)' -r
complete -c fetch -l smtp -d 'Hand each message to this SMTP server (HOST or HOST:PORT, port 25 by default), as fetchmail does. Delivered means the server answered 250 to the end of the message. A remote server must offer STARTTLS unless --allow-plaintext-smtp' -r
complete -c fetch -l deliver-to -d 'With --lmtp or --smtp: the recipient\'s address [default: the local user name, as fetchmail does]' -r
complete -c fetch -l timeout -d 'Timeout in seconds [default: 60]: for connecting, for each reply (a server must keep making progress within it), and the longest wait for another program\'s lock on an mbox' -r
complete -c fetch -l limit -d 'Fetch at most this many messages per account in this run' -r
complete -c fetch -l max-size -d 'Leave messages larger than this on the server (and say so); K, M and G suffixes are powers of 1024' -r
complete -c fetch -l delete-after -d 'POP3 with --keep: delete server copies first fetched more than DAYS days ago' -r
complete -c fetch -l fingerprint -d 'Trust the server\'s certificate only if its SHA-256 fingerprint is this (64 hex digits, colons allowed); replaces the CA check. See --show-cert' -r
complete -c fetch -s d -l daemon -d 'Keep running: fetch every account every SECONDS until SIGTERM or SIGINT (which let the message in flight be committed, end the session properly, and exit 0). An account that fails is retried later and later (doubling, at most hourly); it never holds up the others' -r
complete -c fetch -s j -l jobs -d 'Fetch up to N accounts at the same time (each keeps its own lock)' -r
complete -c fetch -l shard -d 'Run only shard K of N (numbered from 0) of the accounts chosen (all of the config file\'s, or the ACCOUNTs named), so that N machines can split one config file: each runs the same file with its own K. An account\'s shard is fixed by its protocol, user and server (what names its state directory), not by its name or place in the file; adding an account moves no other. A shard may hold no account (then nothing is done, and -v says so). See MANY ACCOUNTS in the man page' -r
complete -c fetch -l max-connections -d 'Open at most N connections at a time to one server [default: 8]: across all accounts, --jobs and --idle watchers. A server is a protocol, host name (as written, not its addresses) and port. A job passes over a full server\'s accounts to another server\'s, and waits only when none has a connection free; watchers never take the last one' -r
complete -c fetch -l import-fetchmailrc -d 'Print a fetch config file equivalent to a fetchmail run control file [default: ~/.fetchmailrc] on stdout, and exit. What has no equivalent here is said in comments; a password is never copied (a comment suggests a password_command instead). A syntax error is exit status 65, with the file and line' -r -F
complete -c fetch -l import-uidls -d 'Record in the ACCOUNT\'s ledger the POP3 messages that fetchmail (its .fetchids) or mpop (its UIDL file) fetched and left on the server, so that fetch does not fetch them again; then exit. Entries for other servers or users are left alone; a second import adds nothing. The account is one from the config file, or --pop3 HOST -u USER' -r -F
complete -c fetch -l generate -d 'Print the man page or a shell completion script and exit (used to produce man/ and completions/)' -r -f -a "man\t''
bash\t''
zsh\t''
fish\t''"
complete -c fetch -l all-folders -d 'IMAP: fetch every folder the server lists'
complete -c fetch -l delete -d 'IMAP: delete fetched messages on the server (\\Deleted, then UID EXPUNGE of exactly those) once their local copies are committed'
complete -c fetch -l sync-deletes -d 'IMAP: propagate deletions both ways: a message expunged on the server is removed locally, a file removed locally is expunged on the server'
complete -c fetch -l resync -d 'IMAP: accept a folder whose UIDVALIDITY changed and fetch it again, without duplicating messages already here'
complete -c fetch -l allow-plaintext-auth -d 'Allow sending the password over a connection without TLS'
complete -c fetch -s k -l keep -d 'Leave messages on the server; later runs fetch only messages not fetched before (tracked by UIDL)'
complete -c fetch -l no-keep -d 'Delete fetched messages from the server even if the config file says keep = true'
complete -c fetch -s a -l all -d 'Fetch all messages, including those fetched before'
complete -c fetch -l stdout -d 'Write messages to stdout as an mboxrd stream, for pipes. Mail is then left on the server (a pipe cannot prove it was kept), unless --delete-after-stdout is also given'
complete -c fetch -l delete-after-stdout -d 'With --stdout: delete from the server what was written to stdout, trusting the reader of the pipe to have kept it'
complete -c fetch -l allow-plaintext-smtp -d 'With --lmtp or --smtp to a remote host: hand mail over even when the server does not offer STARTTLS'
complete -c fetch -l retry-rejected -d 'Offer again the messages an LMTP or SMTP server rejected (5xx) in an earlier run; without it (or --all) they stay on the server, untouched'
complete -c fetch -s q -l quiet -d 'Print nothing but errors. The last of -q and -v given wins'
complete -c fetch -s v -l verbose -d 'Say more: -v a summary and a line per message, -vv also the protocol exchange (passwords redacted)'
complete -c fetch -l json -d 'Write newline-delimited JSON events on stdout (one per message, one per account, one per error; see JSON OUTPUT in the man page)'
complete -c fetch -s c -l check -d 'Only count new messages, downloading nothing and changing nothing; print the count per account. Exit status 0 if there is new mail, 1 if there is none'
complete -c fetch -s n -l dry-run -d 'Connect and say, one line per message on stdout, what a run would fetch, delete, move and which flags it would sync, changing nothing (on the server, in the destination, or in the ledger)'
complete -c fetch -l show-cert -d 'Connect, print the server\'s TLS version, certificate (subject, issuer, validity, names, SHA-256 fingerprint, whether it is trusted) and capabilities, and exit; no credential is sent'
complete -c fetch -l login -d 'Authorize the accounts that have an OAuth client (oauth2_client_id, or a provider preset): print the URL to open in a browser (and, with a device endpoint, the code to enter there), wait for the grant, and keep the refresh token in the account\'s state directory (mode 0600). Later runs refresh the access token by themselves'
complete -c fetch -l idle -d 'With --daemon (or alone, polling every 300 seconds): also fetch an IMAP account as soon as one of its folders has new mail, watching up to 8 folders per account with IDLE. POP3 accounts are polled'
complete -c fetch -l list-accounts -d 'Print the accounts chosen (after --shard), one a line on stdout: the name, a tab, and the account\'s state directory (ledger, lock, OAuth tokens); then exit. Nothing is contacted and nothing is created: it says which directories to move when resharding'
complete -c fetch -s h -l help -d 'Print help (see more with \'--help\')'
complete -c fetch -s V -l version -d 'Print version'
