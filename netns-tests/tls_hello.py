#!/usr/bin/env python3
"""Sends a real ClientHello in awkward shapes and reports whether a TLS server answered it.

    tls_hello.py HOST PORT --sni NAME [--split whole|bytes|record-2|record-3|big] [--pause SECONDS] [--ech]

The hello is openssl's, captured in tests/captures/openssl.bin, with its server name replaced by NAME.
--split: whole (one record, one send), bytes (one record per byte, each byte its own TCP send with
--pause between), record-2 / record-3 (split into records so that the server_name extension begins in
the second / third record), big (padded with a padding extension to about 20 KiB, so it spans two
16 KiB records). --ech adds an encrypted_client_hello extension (a dummy payload: enough for a
proxy to see that ECH is offered; a server that does not do ECH ignores it). Exit 0 when the server's first reply byte is 0x16 (a handshake record: the server
parsed the hello it got), 1 otherwise, 2 on a usage error. Talks only to HOST:PORT."""
import argparse
import os
import socket
import struct
import sys
import time

CAPTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "captures", "openssl.bin")


def hello_message(sni):
    """The capture's handshake message with the SNI replaced; returns it and the SNI's offset."""
    wire = open(CAPTURE, "rb").read()
    (n,) = struct.unpack(">H", wire[3:5])
    msg = wire[5 : 5 + n]
    at = 4 + 2 + 32
    at += 1 + msg[at]
    at += 2 + struct.unpack(">H", msg[at : at + 2])[0]
    at += 1 + msg[at]
    ext_start = at + 2
    exts, pos = [], ext_start
    while pos < len(msg):
        kind, length = struct.unpack(">HH", msg[pos : pos + 4])
        exts.append([kind, msg[pos + 4 : pos + 4 + length]])
        pos += 4 + length
    name = sni.encode()
    entry = b"\x00" + struct.pack(">H", len(name)) + name
    for e in exts:
        if e[0] == 0:
            e[1] = struct.pack(">H", len(entry)) + entry
    return msg[:at], exts


def assemble(head, exts):
    body = b"".join(struct.pack(">HH", k, len(d)) + d for k, d in exts)
    msg = head + struct.pack(">H", len(body)) + body
    offsets, pos = {}, len(head) + 2
    for k, d in exts:
        offsets.setdefault(k, pos)
        pos += 4 + len(d)
    length = len(msg) - 4
    msg = msg[:1] + struct.pack(">I", length)[1:] + msg[4:]
    return msg, offsets[0]


def records(chunks):
    return [b"\x16\x03\x01" + struct.pack(">H", len(c)) + c for c in chunks]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--sni", required=True)
    p.add_argument("--split", default="whole", choices=["whole", "bytes", "record-2", "record-3", "big"])
    p.add_argument("--pause", type=float, default=0.0)
    p.add_argument("--ech", action="store_true")
    a = p.parse_args()

    head, exts = hello_message(a.sni)
    if a.split == "big":
        exts.insert(0, [21, bytes(20000)])
    if a.ech:
        # outer ClientHello ECH: type 0, cipher suite, config id, enc, payload (all dummy).
        exts.append([0xFE0D, b"\x00\x00\x01\x00\x01\x07\x00\x20" + bytes(32) + b"\x00\x40" + bytes(64)])
    msg, sni_at = assemble(head, exts)
    if a.split in ("whole", "big"):
        sends = [b"".join(records([msg[i : i + 16384] for i in range(0, len(msg), 16384)]))]
    elif a.split == "bytes":
        sends = records([msg[i : i + 1] for i in range(len(msg))])
    else:
        # The SNI extension starts in record 2 (or 3): cut just before it (and once more, earlier).
        cuts = [sni_at] if a.split == "record-2" else [sni_at // 2, sni_at]
        bounds = [0] + cuts + [len(msg)]
        sends = [b"".join(records([msg[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]))]

    s = socket.create_connection((a.host, a.port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i, chunk in enumerate(sends):
        s.sendall(chunk)
        if a.pause and i + 1 < len(sends):
            time.sleep(a.pause)
    try:
        reply = s.recv(5)
    except socket.timeout:
        reply = b""
    s.close()
    sent = sum(len(c) for c in sends)
    if reply[:1] == b"\x16":
        print(f"ok: sent a {len(msg)}-byte hello in {len(sends)} sends ({sent} bytes); the server answered with a handshake record")
        return 0
    print(f"no handshake reply to a {len(msg)}-byte hello ({a.split}): got {reply!r}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
