"""Start, talk to and stop a real `wallex serve` process for end-to-end tests.

Standard library only. Typical use:

    server = WallexServer(wallex_binary())
    status, headers, body = server.request("GET", "/health")
    server.stop()      # SIGTERM, asserts exit code 0
    server.cleanup()   # removes the temporary directories it created
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from decimal import Decimal

STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 30.0

# How a sanitizer report starts (ThreadSanitizer, AddressSanitizer, LeakSanitizer, UBSan). The
# sanitizer builds run this suite too; a server's stderr is scanned whenever it stops, so a
# report fails the test even when the process was killed with SIGKILL before it could exit with
# the sanitizer's exit code.
SANITIZER_MARKERS = ("WARNING: ThreadSanitizer", "ERROR: AddressSanitizer",
                     "ERROR: LeakSanitizer", "runtime error:")

_live_servers = set()

# The store every server of this run uses: "sqlite" (the embedded store in its data directory,
# the default) or "postgresql" (WALLEX_E2E_STORE=postgresql): each server then gets a fresh
# database on the server $WALLEX_PG_URL names (scripts/with-pg.sh starts one), migrated with
# `wallex migrate up`, and runs `wallex serve --store <its URL>`. Without WALLEX_PG_URL the
# servers fail to start (tests fail, never skip).
STORE = os.environ.get("WALLEX_E2E_STORE", "sqlite")
if STORE not in ("sqlite", "postgresql"):
    raise RuntimeError(f"WALLEX_E2E_STORE={STORE!r}: expected sqlite or postgresql")
_database_counter = 0


def postgres_server_url():
    url = os.environ.get("WALLEX_PG_URL")
    if not url:
        raise RuntimeError("WALLEX_E2E_STORE=postgresql needs WALLEX_PG_URL "
                           "(run the tests through scripts/with-pg.sh)")
    return url


def url_with_database(url, name):
    """postgresql://u@h:1/postgres?x=y -> postgresql://u@h:1/<name>?x=y"""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


def psql(url, sql, timeout=60):
    """Runs SQL with psql on `url`; returns the rows as tuples of strings (unaligned output)."""
    done = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-X", "-q", "-A", "-t",
                           "-F", "\x1f", "-c", sql],
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise ServerError(f"psql failed ({done.returncode}) on {sql!r}: {done.stderr}")
    return [tuple(line.split("\x1f")) for line in done.stdout.splitlines() if line != ""]


def create_database(binary):
    """A fresh, migrated database on the PostgreSQL server; returns its URL."""
    global _database_counter
    _database_counter += 1
    server_url = postgres_server_url()
    name = f"wallex_e2e_{os.getpid()}_{_database_counter}_{int(time.time() * 1000) % 100000000}"
    psql(server_url, f"CREATE DATABASE {name}")
    url = url_with_database(server_url, name)
    done = subprocess.run([binary, "migrate", "up", "--store", url], capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        raise ServerError(f"wallex migrate up failed: {done.stdout}{done.stderr}")
    return url


def drop_database(url):
    name = url.partition("?")[0].rpartition("/")[2]
    try:
        psql(postgres_server_url(), f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except (ServerError, RuntimeError, subprocess.TimeoutExpired):
        pass


def sanitizer_report(text, context=6000):
    """The first sanitizer report in a process's stderr text, or None."""
    starts = [text.find(marker) for marker in SANITIZER_MARKERS if marker in text]
    if not starts:
        return None
    first = min(starts)
    return text[max(0, first - 200):first + context]


def wallex_binary():
    """The binary under test, from $WALLEX_BIN. Fails loudly when it is missing."""
    path = os.environ.get("WALLEX_BIN")
    if not path:
        raise RuntimeError("WALLEX_BIN is not set: export WALLEX_BIN=/path/to/wallex")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise RuntimeError(f"WALLEX_BIN={path!r} is not an executable file")
    return os.path.abspath(path)


def free_port():
    """A loopback port that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loads(text):
    """JSON with exact decimals: floats become Decimal, never binary floating point."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    return json.loads(text, parse_float=Decimal)


def encode_body(body):
    if body is None:
        return None
    if isinstance(body, (dict, list)):
        return json.dumps(body, separators=(",", ":")).encode("utf-8")
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    raise TypeError(f"unsupported body type {type(body)!r}")


class ServerError(AssertionError):
    pass


class WallexServer:
    def __init__(self, binary, data_dir=None, extra_args=(), command_prefix=(), store_url=None):
        """command_prefix runs the binary through another program that execs it, e.g.
        ("prlimit", "--nofile=256:256", "--") to start it with a lower open file limit.

        store_url: a PostgreSQL database to share with other servers (scale-out tests); by
        default, in the postgresql store mode, the server gets a fresh database of its own."""
        self.binary = binary
        self.store_url = store_url
        self._own_database = False
        if self.store_url is None and STORE == "postgresql":
            self.store_url = create_database(binary)
            self._own_database = True
        self.extra_args = tuple(extra_args)
        self.command_prefix = tuple(command_prefix)
        self.host = "127.0.0.1"
        self._own_dirs = []
        if data_dir is None:
            base = tempfile.mkdtemp(prefix="wallex-e2e-")
            self._own_dirs.append(base)
            data_dir = os.path.join(base, "data")
            os.mkdir(data_dir)
        self.data_dir = os.path.abspath(data_dir)
        parent = os.path.dirname(self.data_dir)
        name = os.path.basename(self.data_dir)
        self.stderr_path = os.path.join(parent, f"{name}.server-stderr.log")
        self.stdout_path = os.path.join(parent, f"{name}.server-stdout.log")
        self.port = free_port()
        self.proc = None
        self._stderr_scanned = 0  # bytes of stderr already checked for sanitizer reports
        self.start()

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("server already running")
        store = ("--store", self.store_url) if self.store_url else ()
        cmd = [*self.command_prefix, self.binary, "serve", "--port", str(self.port),
               "--host", self.host, "--data-dir", self.data_dir, *store, *self.extra_args]
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            marker = f"\n===== {time.strftime('%H:%M:%S')} start: {' '.join(cmd)}\n".encode()
            err.write(marker)
            err.flush()
            self._start_offset = err.tell()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _live_servers.add(self)
        self._wait_healthy()

    def _wait_healthy(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last_error = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerError(f"wallex exited with code {rc} during startup\n{self.stderr_tail()}")
            # The port was free a moment ago, not reserved: until this process says it listens
            # on it, a 200 may come from another server that took the port meanwhile (another
            # suite's, run at the same time), and the tests would talk to that one.
            if not self._says_it_listens():
                last_error = "no 'wallex serving on' line in stderr yet"
                time.sleep(0.05)
                continue
            try:
                status, _, _ = self.request("GET", "/health", timeout=2.0)
                if status == 200:
                    return
                last_error = f"GET /health answered {status}"
            except OSError as e:
                last_error = repr(e)
            time.sleep(0.05)
        self.kill9()
        raise ServerError(f"wallex not healthy after {STARTUP_TIMEOUT_S}s ({last_error})\n"
                          f"{self.stderr_tail()}")

    def _says_it_listens(self):
        with open(self.stderr_path, "rb") as err:
            err.seek(self._start_offset)
            text = err.read().decode(errors="replace")
        return f"wallex serving on {self.host}:{self.port}" in text

    def stop(self):
        """Graceful stop: SIGTERM, wait up to 10 s, assert exit code 0."""
        if self.proc is None:
            return
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                _live_servers.discard(self)
                raise ServerError(f"wallex did not exit within {STOP_TIMEOUT_S}s of SIGTERM\n"
                                  f"{self.stderr_tail()}")
        _live_servers.discard(self)
        self.check_sanitizers()
        rc = proc.returncode
        if rc != 0:
            raise ServerError(f"wallex exited with code {rc} after SIGTERM (expected 0)\n"
                              f"{self.stderr_tail()}")

    def kill9(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        _live_servers.discard(self)
        self.check_sanitizers()

    def restart(self):
        """Start again on the same data dir and port (the previous process must be gone)."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("restart() needs the server stopped first (stop() or kill9())")
        self.start()

    # ------------------------------------------------------------------ the store

    def tool_args(self):
        """How `wallex rebuild|verify` names this server's store."""
        return ["--store", self.store_url] if self.store_url else ["--data-dir", self.data_dir]

    def query(self, sql, which="write"):
        """Rows of SQL run directly on the store: which="write" (the log and write model) or
        "read" (the read side); the same database on PostgreSQL. Values are strings on
        PostgreSQL, typed on SQLite: compare results of one store with each other only."""
        if self.store_url:
            return psql(self.store_url, sql)
        name = "read.db" if which == "read" else "wallex.db"
        db = sqlite3.connect(os.path.join(self.data_dir, name))
        try:
            rows = db.execute(sql).fetchall()
            db.commit()
            return rows
        finally:
            db.close()

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        """Kill the process if still running and remove temporary directories we created.

        Raises ServerError afterwards when stderr holds a sanitizer report not raised yet."""
        if self.is_running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            _live_servers.discard(self)
        report = self._new_sanitizer_report()
        for d in self._own_dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._own_dirs = []
        if self._own_database:
            drop_database(self.store_url)
            self._own_database = False
        if report is not None:
            raise ServerError(f"sanitizer report in wallex stderr:\n{report}")

    def check_sanitizers(self):
        """Raises ServerError when the server's stderr has a sanitizer report not raised yet."""
        report = self._new_sanitizer_report()
        if report is not None:
            raise ServerError(f"sanitizer report in wallex stderr ({self.stderr_path}):\n{report}")

    def _new_sanitizer_report(self):
        try:
            with open(self.stderr_path, "rb") as f:
                f.seek(self._stderr_scanned)
                data = f.read()
        except OSError:
            return None
        self._stderr_scanned += len(data)
        return sanitizer_report(data.decode("utf-8", "replace"))

    def stderr_tail(self, limit=8000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
        except OSError as e:
            return f"(no stderr: {e})"
        text = data[-limit:].decode("utf-8", "replace")
        return f"--- wallex stderr ({self.stderr_path}) ---\n{text}\n--- end of stderr ---"

    # ------------------------------------------------------------------ HTTP

    def connect(self, timeout=REQUEST_TIMEOUT_S):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def raw_socket(self, timeout=REQUEST_TIMEOUT_S):
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S):
        """One request on a fresh connection.

        body: dict/list -> JSON-encoded; str/bytes -> sent as is. Content-Type defaults to
        application/json whenever there is a body.
        Returns (status, headers with lower-case names, raw body bytes).
        """
        conn = self.connect(timeout)
        try:
            return self.request_on(conn, method, path, body, headers)
        except ConnectionRefusedError as e:
            # Nothing listens: say whether the server is gone, and what it printed last, so a
            # failure on a CI machine can be read from the test's own output.
            rc = self.proc.poll() if self.proc is not None else None
            state = "not started" if self.proc is None else (
                f"exited with code {rc}" if rc is not None else "still running")
            raise ConnectionRefusedError(
                e.errno, f"{e.strerror} on {self.host}:{self.port}; wallex {state}\n"
                f"{self.stderr_tail()}") from e
        finally:
            conn.close()

    @staticmethod
    def request_on(conn, method, path, body=None, headers=None):
        """One request on a given (possibly kept-alive) HTTPConnection."""
        data = encode_body(body)
        hdrs = dict(headers or {})
        if data is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, lower_headers(resp.getheaders()), raw

    def json(self, method, path, body=None, headers=None):
        """Like request(), but returns (status, parsed JSON with Decimal floats, headers, text)."""
        status, hdrs, raw = self.request(method, path, body, headers)
        text = raw.decode("utf-8")
        try:
            parsed = loads(text) if text else None
        except ValueError:
            parsed = None
        return status, parsed, hdrs, text


def lower_headers(pairs):
    out = {}
    for name, value in pairs:
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


# ---------------------------------------------------------------------- raw HTTP/1.1 parsing

def build_request(method, path, body=None, headers=None, host="127.0.0.1"):
    """Bytes of one HTTP/1.1 request (for raw-socket tests)."""
    data = encode_body(body) or b""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
        hdrs.setdefault("Content-Length", str(len(data)))
    for k, v in hdrs.items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def read_response(f):
    """Reads exactly one HTTP/1.1 response from a binary file object (sock.makefile('rb')).

    Returns (status, headers_lowercase, body). Supports Content-Length and chunked bodies, so
    several pipelined responses can be read one after another from the same file object.
    """
    status_line = f.readline(65537)
    if not status_line:
        raise ConnectionError("connection closed before a response")
    parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"bad status line {status_line!r}")
    status = int(parts[1])
    pairs = []
    while True:
        line = f.readline(65537)
        if not line:
            raise ConnectionError("connection closed inside the response headers")
        if line in (b"\r\n", b"\n"):
            break
        name, _, value = line.decode("latin-1").partition(":")
        pairs.append((name.strip(), value.strip()))
    headers = lower_headers(pairs)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while True:
            size = int(f.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += _read_exact(f, size)
            f.readline()
    elif "content-length" in headers:
        body = _read_exact(f, int(headers["content-length"]))
    elif status in (204, 304) or 100 <= status < 200:
        body = b""
    else:
        body = f.read()
    return status, headers, body


def _read_exact(f, n):
    data = f.read(n)
    if len(data) != n:
        raise ConnectionError(f"connection closed after {len(data)} of {n} body bytes")
    return data


@atexit.register
def _kill_leftovers():
    for server in list(_live_servers):
        try:
            server.kill9()
        except Exception:
            pass
