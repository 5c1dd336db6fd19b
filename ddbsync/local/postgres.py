"""A throwaway PostgreSQL server from the machine's own binaries, for the local stack and the tests.

`initdb` refuses to run as root, so as root the server runs as the unprivileged `postgres` user
(Debian's packages create it) in a data directory that user owns; clients connect over TCP.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

SEARCH_PATTERNS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin")
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> Path:
    """The folder with `initdb` and `pg_ctl`: `$PG_BINDIR`, the PATH, or the usual Debian place."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    on_path = shutil.which("pg_ctl")
    if on_path and Path(on_path).with_name("initdb").exists():
        return Path(on_path).parent
    found = sorted(
        (Path(p) for pattern in SEARCH_PATTERNS for p in glob.glob(pattern) if Path(p, "initdb").exists()),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
    )
    if not found:
        raise PostgresNotFound(
            "no PostgreSQL server binaries found (looked on PATH and in /usr/lib/postgresql/*/bin); "
            "install them with `apt-get install postgresql` or set DATABASE_URL to an existing server"
        )
    return found[-1]


def free_port() -> int:
    """A TCP port nobody listens on right now; other servers may share this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    """A PostgreSQL server in its own data directory on a free port."""

    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ddbsync-pg-")))
    port: int = field(default_factory=free_port)
    settings: dict[str, str] = field(default_factory=dict)
    bindir: Path = field(default_factory=find_bindir)
    tls: bool = False

    @property
    def certificate(self) -> Path:
        """The server's self-signed certificate, for clients that verify it (`sslrootcert`)."""
        return self.data_dir / "server.crt"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        program = self.bindir / args[0]
        command = [str(program) if program.exists() else args[0], *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> PostgresServer:
        """initdb if needed, then start and wait until it accepts connections."""
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = [f"-p {self.port}", f"-k {self.data_dir}", "-c listen_addresses=127.0.0.1"]
        if self.tls:
            self._make_certificate()
            options.append("-c ssl=on")
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                "60",
                "-l",
                str(self.data_dir / "server.log"),
                "-o",
                " ".join(options),
                "start",
            )
        except subprocess.CalledProcessError as error:
            log = self.data_dir / "server.log"
            detail = log.read_text(errors="replace")[-2000:] if log.exists() else error.stderr.decode(errors="replace")
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{detail}") from None
        return self

    def _make_certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1, so TLS works as it does against Aurora."""
        if self.certificate.exists():
            return
        key = self.data_dir / "server.key"
        self._run(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(self.certificate),
        )
        key.chmod(0o600)

    def stop(self, keep_data: bool = False, mode: str = "fast") -> None:
        """Stop the server and remove its data unless asked to keep it.

        `mode="immediate"` ends every process at once without a checkpoint, as a crash or a failover
        does to a client; `start()` then recovers the same data directory.
        """
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")
        if not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)
