"""A TCP forwarder that delays every chunk, for measuring with a round trip like Lambda to Aurora.

In one AWS region a Lambda function reaches Aurora in about 0.5-1 ms; a local server answers in
tens of microseconds, which flatters every design that makes one round trip per record. The usual
tool, `tc qdisc ... netem delay`, is missing from these machines' kernel, so this forwarder sits
between the client and PostgreSQL instead: it listens on 127.0.0.1 on a free port, opens one
connection to the server per client connection, and holds every chunk it reads `delay_us`
microseconds before passing it on, in each direction. Each connection has two threads, one per
direction, that sleep with `time.sleep` (microsecond-accurate, where asyncio's timers round to
milliseconds); both sockets set `TCP_NODELAY`, so the kernel adds no delay of its own. A chunk read
while the previous one was held waits its own full delay after it is read, so the forwarder suits a
request-response protocol (one statement and its answer), not a bandwidth test: at 250 us each way a
2 MB statement (a JSON document of 10,000 changes) took 10 ms more than direct (measured 2026-11-25 on
a 2-core machine), where a 10 Gbit/s link would add under 2 ms.

    with Forwarder("127.0.0.1", 5432, delay_us=250) as forwarder:
        url = forwarder.url("postgresql://postgres@127.0.0.1:5432/postgres")
        print(round_trip_seconds(url))  # about 0.75 ms on a 2-core machine
"""

from __future__ import annotations

import socket
import statistics
import threading
import time
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

import psycopg2

CHUNK_BYTES = 65536


class _Connection:
    """One client connection and its connection to the server, with a pump thread each way."""

    def __init__(self, client: socket.socket, server: socket.socket, delay: float) -> None:
        self.client, self.server, self.delay = client, server, delay
        self._lock = threading.Lock()
        self._open_directions = 2
        self.threads = [
            threading.Thread(target=self._pump, args=(client, server), daemon=True, name="forwarder-up"),
            threading.Thread(target=self._pump, args=(server, client), daemon=True, name="forwarder-down"),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        """Read a chunk, hold it `delay`, send it; pass an end of stream on."""
        try:
            while True:
                chunk = source.recv(CHUNK_BYTES)
                if not chunk:
                    break
                time.sleep(self.delay)
                target.sendall(chunk)
            # The source said it sends no more: tell the other side, which may still answer.
            with suppress(OSError):
                target.shutdown(socket.SHUT_WR)
            self._direction_done()
        except OSError:
            # A reset, or the forwarder stopping: the connection is over in both directions.
            self.close()

    def _direction_done(self) -> None:
        with self._lock:
            self._open_directions -= 1
            last = self._open_directions == 0
        if last:
            self.close()

    def close(self) -> None:
        """Close both sockets; a pump blocked on either wakes with an error and ends."""
        for sock in (self.client, self.server):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()

    @property
    def alive(self) -> bool:
        return any(thread.is_alive() for thread in self.threads)


class Forwarder:
    """Listens on 127.0.0.1 (a free port) and forwards to `host:port`, `delay_us` later each way."""

    def __init__(self, host: str, port: int, delay_us: float) -> None:
        self.target = (host, port)
        self.delay = delay_us / 1e6
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._connections: list[_Connection] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("the forwarder is not started")
        return self._listener.getsockname()[1]

    def url(self, url: str) -> str:
        """`url` (a `postgresql://` URL of the target server) pointed at the forwarder instead."""
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0]
        netloc = f"{user}@127.0.0.1:{self.port}" if user else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> Forwarder:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        listener.settimeout(0.2)  # so the acceptor notices `stop` without waiting for a client
        self._listener = listener
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept, daemon=True, name="forwarder-accept")
        self._acceptor.start()
        return self

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break  # the listener was closed
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()  # the client sees the server refuse, as it would directly
                continue
            for sock in (client, server):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(client, server, self.delay)
            with self._lock:
                self._connections = [c for c in self._connections if c.alive]
                self._connections.append(connection)
            connection.start()

    def stop(self) -> None:
        """Stop accepting, close every connection, and wait for the threads to end."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()
        for connection in connections:
            for thread in connection.threads:
                thread.join(timeout=5)

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def round_trip_seconds(url: str, count: int = 300, warmup: int = 20) -> float:
    """The median time of `SELECT 1` over one connection to `url`: the round trip a statement pays."""
    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            timings = []
            for i in range(warmup + count):
                started = time.perf_counter()
                cursor.execute("SELECT 1")
                cursor.fetchone()
                if i >= warmup:
                    timings.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.median(timings)
