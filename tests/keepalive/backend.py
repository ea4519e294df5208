#!/usr/bin/env python3
"""An HTTP/1.1 API node that closes kept-alive connections the way a worker's keep-alive
timer does when it fires as a request arrives: a request on a connection that sat idle
longer than IDLE_MS is read and answered by closing the connection, with no response
(gunicorn's gthread worker closes expired keep-alive connections in the same loop that
reads them; `--keep-alive` defaults to 2 s). Every request on a fresh connection, or on one
used within IDLE_MS, gets `200 ok`. This makes the race of a balancer reusing an idle
server connection as the server drops it happen every time instead of once in thousands.

  backend.py HOST PORT IDLE_MS      (prints `ready` once it listens; stdlib only)

Not a mock of a remote service: it is the lab's API node with its one timing made certain.
"""

import socket
import sys
import threading
import time


def serve(conn, idle):
    conn.settimeout(30)
    buf = b""
    last = None
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]
            if last is not None and time.monotonic() - last > idle:
                return  # the keep-alive timer fired: closed, no answer
            body = b"ok"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\n" + body)
            last = time.monotonic()
    except OSError:
        return
    finally:
        conn.close()


def main():
    host, port, idle_ms = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    listener = socket.create_server((host, port))
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, idle_ms / 1000), daemon=True).start()


if __name__ == "__main__":
    main()
