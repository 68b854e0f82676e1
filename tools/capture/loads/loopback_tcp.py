#!/usr/bin/python3
"""A loopback TCP load for captures: a server process echoes what a client
process sends, one bulk message of 60000 bytes in every sixteen, the others
200 bytes, each waiting for its echo (TCP_NODELAY).

    tools/capture/loads/loopback_tcp.py [SECONDS]     (default 5)
"""
import os
import socket
import sys
import time


def serve(sock):
    conn, _ = sock.accept()
    with conn:
        while True:
            data = conn.recv(65536)
            if not data:
                return
            conn.sendall(data)


def client(port, seconds):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    end = time.time() + seconds
    small = b"x" * 200
    bulk = b"y" * 60000
    n = 0
    while time.time() < end:
        msg = bulk if n % 16 == 0 else small
        s.sendall(msg)
        got = 0
        while got < len(msg):
            got += len(s.recv(65536))
        n += 1
    s.close()
    return n


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        serve(listener)
        os._exit(0)
    n = client(port, seconds)
    os.waitpid(pid, 0)
    print(f"loopback_tcp: {n} round trips", file=sys.stderr)


if __name__ == "__main__":
    main()
