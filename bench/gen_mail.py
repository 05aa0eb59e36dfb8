#!/usr/bin/env python3
"""Deterministic benchmark mail for `fetch` (synthetic; written for this project).

    gen_mail.py realistic OUTDIR [COUNT]   # COUNT (default 2000) messages, ~56 MB for 2000:
                                           # ~96% text of 2-20 KB, ~4% with a 100 KB-1 MB
                                           # base64 attachment
    gen_mail.py small OUTDIR [COUNT]       # COUNT (default 10000) messages of ~1-3 KB
    gen_mail.py huge OUTFILE [MB]          # one message with an attachment of MB (default 50) MB

Messages have LF line endings (as a Maildir stores them) and realistic headers.
Same arguments, same bytes: the generator is seeded, there is no clock.
"""
import base64
import os
import random
import sys

WORDS = (
    "the of and to in is you that it he was for on are as with his they at be this "
    "from have or by one had not but what all were when we there can an your which "
    "their said if do will each about how up out them then she many some so these "
    "would other into has more her two like him see time could no make than first "
    "been its who now people my made over did down only way find use may water long "
    "little very after words called just where most know mail server fetch message"
).split()


def headers(rng, i, subject, extra=()):
    sender = f"{rng.choice(WORDS)}.{rng.choice(WORDS)}@example.org"
    h = [
        f"Return-Path: <{sender}>",
        f"Received: from mx{rng.randrange(9)}.example.org (mx.example.org [192.0.2.{rng.randrange(1, 254)}])",
        f"\tby mail.example.net with ESMTPS id {rng.getrandbits(64):016x}",
        f"\tfor <bob@example.net>; Mon, 23 Nov 2026 {i % 24:02d}:{i % 60:02d}:00 +0000",
        f"From: {rng.choice(WORDS).title()} <{sender}>",
        "To: Bob <bob@example.net>",
        f"Subject: {subject}",
        f"Date: Mon, 23 Nov 2026 {i % 24:02d}:{i % 60:02d}:{i % 59:02d} +0000",
        f"Message-ID: <{i}.{rng.getrandbits(48):012x}@bench.fetch>",
        "MIME-Version: 1.0",
    ]
    h.extend(extra)
    return "\n".join(h) + "\n"


def text(rng, size):
    lines, n = [], 0
    while n < size:
        line = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(6, 14)))
        if rng.random() < 0.02:
            line = "From " + line  # mbox hazards, as in real mail
        elif rng.random() < 0.02:
            line = "." + line
        lines.append(line)
        n += len(line) + 1
    return "\n".join(lines) + "\n"


def attachment_message(rng, i, size):
    b = f"b{i:08x}"
    body = text(rng, rng.randrange(300, 2000))
    blob = rng.randbytes(size)
    enc = base64.encodebytes(blob).decode()
    return (
        headers(rng, i, f"report {i} attached", [f'Content-Type: multipart/mixed; boundary="{b}"'])
        + f"\n--{b}\nContent-Type: text/plain; charset=utf-8\n\n{body}"
        + f"--{b}\nContent-Type: application/pdf\nContent-Disposition: attachment; filename=\"r{i}.pdf\"\n"
        + f"Content-Transfer-Encoding: base64\n\n{enc}--{b}--\n"
    )


def write(outdir, i, data):
    with open(os.path.join(outdir, f"{i:06d}.eml"), "wb") as f:
        f.write(data.encode())


def realistic(outdir, count):
    rng = random.Random(20261123)
    for i in range(count):
        if rng.random() < 0.04:
            size = int(100_000 * 10 ** rng.random())  # log-uniform 100 KB - 1 MB
            write(outdir, i, attachment_message(rng, i, size * 3 // 4))
        else:
            write(outdir, i, headers(rng, i, f"message {i}", ["Content-Type: text/plain; charset=utf-8"]) + "\n" + text(rng, rng.randrange(1500, 19000)))


def small(outdir, count):
    rng = random.Random(10000)
    for i in range(count):
        write(outdir, i, headers(rng, i, f"small {i}", ["Content-Type: text/plain"]) + "\n" + text(rng, rng.randrange(300, 2000)))


def huge(path, mb):
    rng = random.Random(50)
    with open(path, "wb") as f:
        f.write(attachment_message(rng, 0, mb * 1_000_000 * 3 // 4).encode())


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    kind, out = sys.argv[1], sys.argv[2]
    arg = int(sys.argv[3]) if len(sys.argv) > 3 else None
    if kind == "huge":
        huge(out, arg or 50)
        return
    os.makedirs(out, exist_ok=True)
    if kind == "realistic":
        realistic(out, arg or 2000)
    elif kind == "small":
        small(out, arg or 10000)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
