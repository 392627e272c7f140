#!/usr/bin/env python3
"""A transparent TCP relay that records the secrets crossing it.

Put between the plugin and a plain-HTTP Atlas simulator, it sees every
private key Atlas ever returned (including keys of issuances that failed and
were never shown to the user) and every HTTP Digest `response=` value the
plugin sent. The secret-hygiene check then searches all logs for them.

    capture-relay.py --upstream HOST:PORT --secrets FILE

Prints `http://127.0.0.1:<port>` on stdout once listening, then relays until
SIGTERM. FILE gets one secret a line (appended as found, deduplicated).
A connection the upstream closes (a simulated reset) is closed towards the
client too, so faults look the same through the relay.
"""

import argparse
import re
import signal
import socket
import sys
import threading

# JSON `"privateKey": "<uuid>"` in Atlas answers; Digest `response="<hex>"` in
# Authorization headers. Redacted values (`********-...`) do not match.
PATTERNS = [
    re.compile(rb'"privateKey"\s*:\s*"([0-9a-fA-F-]{36})"'),
    re.compile(rb'[Rr]esponse="([0-9a-fA-F]{32,128})"'),
]
# Longest match a chunk boundary can split, plus margin.
OVERLAP = 256


class Recorder:
    def __init__(self, path):
        self.path = path
        self.seen = set()
        self.lock = threading.Lock()

    def scan(self, data):
        found = []
        for pattern in PATTERNS:
            found.extend(m.group(1) for m in pattern.finditer(data))
        if not found:
            return
        with self.lock:
            fresh = [f for f in found if f not in self.seen]
            if not fresh:
                return
            self.seen.update(fresh)
            with open(self.path, "ab") as out:
                for value in fresh:
                    out.write(value + b"\n")


def pump(src, dst, recorder, closing):
    tail = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            recorder.scan(tail + data)
            tail = (tail + data)[-OVERLAP:]
            dst.sendall(data)
    except OSError:
        pass
    finally:
        closing()


def serve(client, upstream, recorder):
    try:
        server = socket.create_connection(upstream, timeout=10)
        server.settimeout(None)
    except OSError:
        client.close()
        return
    once = threading.Lock()
    closed = []

    def closing():
        with once:
            if closed:
                return
            closed.append(True)
        for s in (client, server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    threading.Thread(target=pump, args=(client, server, recorder, closing), daemon=True).start()
    threading.Thread(target=pump, args=(server, client, recorder, closing), daemon=True).start()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--secrets", required=True)
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    upstream = (host, int(port))
    recorder = Recorder(args.secrets)
    open(args.secrets, "ab").close()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=serve, args=(client, upstream, recorder), daemon=True).start()


if __name__ == "__main__":
    main()
