"""Shared parts of the crash and disk-fault tests: a server process that can be SIGKILLed at any
moment (also during start-up) and run under the fault shim, a concurrent client workload that
records every reply, and an auditor that checks the store against what clients were told.

Standard library only. The auditor's model is built from the requests and their definitive
replies, never from the store:
  - every acknowledged request (any reply other than 503) is recorded with its exact bytes;
  - every unacknowledged request (dropped connection, 503) is re-sent with the same key and body
    after a restart: it replays (it had committed) or executes now; either way it then has one
    definitive reply;
  - each 201 reply claims versions of the wallets it touched with the balance after them; over
    all definitive replies every wallet's versions 0..N must be claimed exactly once, and each
    balance must follow from the previous one by the request's own amount (a doubled, lost or
    half-applied operation breaks this chain);
  - the server's current balance and version of every wallet must equal the end of its chain.
"""

import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from wallex_server import free_port, loads  # noqa: E402  (shared with the e2e tests)

STARTUP_TIMEOUT_S = 20.0
WALLETS_MAX = 600
REQUEST_TIMEOUT_S = 20.0


def wallex_binary():
    path = os.environ.get("WALLEX_BIN")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError(f"WALLEX_BIN={path!r} is not an executable file")
    return os.path.abspath(path)


def shim_library():
    path = os.environ.get("WALLEX_FAULT_SHIM")
    if not path or not os.path.isfile(path):
        raise RuntimeError(f"WALLEX_FAULT_SHIM={path!r} is not a file")
    return os.path.abspath(path)


def asan_runtime(binary):
    """The libasan the binary links against, or None. An ASan runtime must come first among
    preloaded libraries, so the fault shim is preloaded after it."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if "libasan" in line and "=>" in line:
            return line.split("=>")[1].split("(")[0].strip()
    return None


def tool(*args, timeout=120):
    """Runs `wallex <args>`; returns (exit code, stdout, stderr)."""
    proc = subprocess.run([wallex_binary(), *args], capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def cents_of(value):
    """Exact cents from a JSON number parsed as Decimal (or int)."""
    d = Decimal(value) * 100
    if d != d.to_integral_value():
        raise AssertionError(f"{value} has more than two decimals")
    return int(d)


def money_text(cents):
    return f"{cents // 100}.{cents % 100:02d}"


# ====================================================================== server process

class Server:
    """One `wallex serve` on a fixed data dir and port; start, SIGKILL, restart at will."""

    def __init__(self, data_dir, extra_args=(), env=None):
        self.binary = wallex_binary()
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.port = free_port()
        self.proc = None
        self.log_path = data_dir.rstrip("/") + ".server.log"

    def spawn(self, extra_args=None, env=None):
        """Starts the process without waiting for it to be ready."""
        if self.is_running():
            raise RuntimeError("server already running")
        args = self.extra_args if extra_args is None else list(extra_args)
        cmd = [self.binary, "serve", "--port", str(self.port), "--host", "127.0.0.1",
               "--data-dir", self.data_dir, *args]
        full_env = dict(os.environ)
        full_env.update(self.env if env is None else env)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=full_env)

    def start(self, extra_args=None, env=None):
        self.spawn(extra_args, env)
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"wallex exited with {self.proc.returncode} during start-up\n"
                                     f"{self.log_tail()}")
            try:
                status, _, _ = self.request("GET", "/health", timeout=2.0)
                if status in (200, 503):  # 503: up, but a projector is still retrying
                    return
                last = status
            except OSError as e:
                last = repr(e)
            time.sleep(0.02)
        self.kill9()
        raise AssertionError(f"wallex not ready after {STARTUP_TIMEOUT_S}s ({last})\n{self.log_tail()}")

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout=15.0):
        """SIGTERM; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise AssertionError(f"wallex did not stop within {timeout}s\n{self.log_tail()}")

    def wait_exit(self, timeout):
        """The exit code once the process ends on its own, or None after `timeout`."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def is_running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, limit=6000):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError as e:
            return f"(no log: {e})"
        return "--- server log ---\n" + data[-limit:].decode("utf-8", "replace") + "\n---"

    def connect(self, timeout=REQUEST_TIMEOUT_S):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, timeout=REQUEST_TIMEOUT_S):
        conn = self.connect(timeout)
        try:
            return send(conn, method, path, body, headers)
        finally:
            conn.close()

    def get_json(self, path):
        status, headers, raw = self.request("GET", path)
        return status, (loads(raw) if raw else None)

    def health(self):
        return self.get_json("/health")[1]

    def wait_projections_caught_up(self, timeout=30.0):
        """Waits until every projector has applied the whole log (GET /health lag 0)."""
        deadline = time.monotonic() + timeout
        health = None
        while time.monotonic() < deadline:
            health = self.health()
            head = health["store"]["lastPosition"]
            projections = health["projections"]
            if all(p["position"] >= head and p["positionsBehind"] == 0 for p in projections.values()):
                return health
            time.sleep(0.05)
        raise AssertionError(f"projections did not catch up within {timeout}s: {health}")


def send(conn, method, path, body=None, headers=None):
    hdrs = dict(headers or {})
    if body is not None:
        hdrs.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=hdrs)
    resp = conn.getresponse()
    raw = resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw


# ====================================================================== operations and the model

class Op:
    """One keyed POST and what became of it."""

    __slots__ = ("key", "kind", "wallet", "to", "cents", "path", "body", "epoch", "status",
                 "raw", "position", "outcome", "refusal", "_parsed")

    def __init__(self, key, kind, wallet, to, cents, path, body, epoch):
        self.key = key
        self.kind = kind        # create | credit | debit | transfer
        self.wallet = wallet    # the created / credited / debited wallet, or a transfer's source
        self.to = to            # a transfer's destination
        self.cents = cents      # amount, or a create's initial balance (0: none)
        self.path = path
        self.body = body        # exact bytes sent, re-sent unchanged
        self.epoch = epoch
        self.status = None      # definitive reply once known
        self.raw = None
        self.position = None
        # "acked" (reply received), "committed-unacked" (no reply, replayed after the restart),
        # "executed-late" (no reply, not committed, executed when re-sent)
        self.outcome = None
        self.refusal = None     # the last non-definitive reply (503), as (status, raw)
        self._parsed = None

    @property
    def acknowledged(self):
        return self.status is not None

    def record(self, status, headers, raw, outcome):
        self.status = status
        self.raw = raw
        self._parsed = None
        self.position = headers.get("x-wallex-position")
        self.outcome = outcome

    def json(self):
        if self._parsed is None:
            self._parsed = loads(self.raw)
        return self._parsed


def is_definitive(status, raw):
    """A reply the server stored with the key: everything but 503 and 'in flight' 409."""
    if status == 503:
        return False
    if status == 409:
        try:
            return loads(raw).get("code") != "IDEMPOTENCY_REQUEST_IN_FLIGHT"
        except ValueError:
            return True
    return True


class Workload:
    """Mixed create/credit/debit/transfer traffic from several threads, each request keyed.

    The choice of operations is seeded per (seed, epoch, thread); the interleaving is not."""

    def __init__(self, server, seed, threads=6):
        self.server = server
        self.seed = seed
        self.threads = threads
        self.ops = []               # every Op ever sent, in send order per thread
        self.wallets = []           # wallets known to exist (creation acknowledged)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.epoch = 0
        self._stop = threading.Event()
        self._workers = []
        self._counter = 0

    # ------------------------------------------------------------------ building requests

    def _next_key(self, prefix):
        with self.lock:
            self._counter += 1
            return f"{prefix}-{self.seed}-{self._counter}"

    def make_op(self, rnd, kind=None):
        with self.lock:
            pool = list(self.wallets)
        if kind is None:
            # New wallets keep coming until there are enough to spread the load; a long run
            # then keeps to those, so the per-restart checks stay proportionate.
            creates = 4 if len(pool) < WALLETS_MAX else 0
            kind = "create" if len(pool) < 2 else rnd.choices(
                ["create", "credit", "debit", "transfer"], [creates, 30, 30, 36])[0]
        key = self._next_key("k")
        if kind == "create":
            wallet = f"w{self.seed}-{self.epoch}-{key.rsplit('-', 1)[1]}"
            cents = rnd.choice([0, 0, rnd.randint(1, 200_000)])
            body = {"walletId": wallet, "ownerId": f"owner-{rnd.randint(1, 5)}"}
            text = json.dumps(body, separators=(",", ":"))
            if cents:
                text = text[:-1] + f',"initialBalance":{money_text(cents)}}}'
            return Op(key, kind, wallet, None, cents, "/wallets", text.encode(), self.epoch)
        cents = rnd.randint(1, 6_000)
        # Amounts go as JSON numbers or as decimal strings, both exact.
        amount = money_text(cents) if rnd.random() < 0.5 else f'"{money_text(cents)}"'
        if kind == "transfer":
            source, target = rnd.sample(pool, 2)
            text = f'{{"toWalletId":{json.dumps(target)},"amount":{amount}}}'
            return Op(key, kind, source, target, cents, f"/wallets/{source}/transfer",
                      text.encode(), self.epoch)
        wallet = rnd.choice(pool)
        text = f'{{"amount":{amount},"description":"{kind} {key}"}}'
        return Op(key, kind, wallet, None, cents, f"/wallets/{wallet}/{kind}", text.encode(),
                  self.epoch)

    def send_op(self, conn, op, outcome):
        """Sends op on conn; records a definitive reply. Returns (status, headers, raw)."""
        status, headers, raw = send(conn, "POST", op.path, op.body, {"Idempotency-Key": op.key})
        if is_definitive(status, raw):
            op.record(status, headers, raw, outcome)
            if op.kind == "create" and status == 201:
                with self.lock:
                    self.wallets.append(op.wallet)
        else:
            op.refusal = (status, raw)
        return status, headers, raw

    # ------------------------------------------------------------------ load

    def start(self):
        self._stop.clear()
        self._workers = [threading.Thread(target=self._worker, args=(t,), daemon=True)
                         for t in range(self.threads)]
        for w in self._workers:
            w.start()

    def stop_and_join(self):
        self._stop.set()
        for w in self._workers:
            w.join(timeout=60)
            if w.is_alive():
                raise AssertionError("a client thread did not finish")
        self._workers = []

    def _worker(self, thread):
        rnd = random.Random(f"{self.seed}/{self.epoch}/{thread}")
        conn = self.server.connect()
        try:
            while not self._stop.is_set():
                op = self.make_op(rnd)
                with self.lock:
                    self.ops.append(op)
                    self.in_flight += 1
                try:
                    status, _, _ = self.send_op(conn, op, "acked")
                    if status == 503:
                        time.sleep(0.05)  # Retry-After, shortened
                except (OSError, http.client.HTTPException):
                    return  # the server is gone: op stays unacknowledged
                finally:
                    with self.lock:
                        self.in_flight -= 1
        finally:
            conn.close()

    def run_for(self, seconds):
        """Load from every thread for `seconds`, then a clean stop (every reply received)."""
        self.start()
        time.sleep(seconds)
        self.stop_and_join()

    def create_wallets(self, count, rnd):
        conn = self.server.connect()
        try:
            for _ in range(count):
                op = self.make_op(rnd, "create")
                self.ops.append(op)
                status, _, raw = self.send_op(conn, op, "acked")
                if status != 201:
                    raise AssertionError(f"creating {op.wallet}: {status} {raw!r}")
        finally:
            conn.close()

    # ------------------------------------------------------------------ after a restart

    def resolve_unacknowledged(self, threads=4):
        """Re-sends every unacknowledged op with its key and body. Returns (replayed, executed)."""
        pending = [op for op in self.ops if not op.acknowledged]
        counts = {"replayed": 0, "executed": 0}

        def resolve(chunk):
            conn = self.server.connect()
            try:
                for op in chunk:
                    for attempt in range(50):
                        status, headers, raw = send(conn, "POST", op.path, op.body,
                                                    {"Idempotency-Key": op.key})
                        if is_definitive(status, raw):
                            break
                        time.sleep(0.05)
                    else:
                        raise AssertionError(f"{op.key}: no definitive reply, last {status} {raw!r}")
                    replayed = headers.get("idempotent-replayed") == "true"
                    op.record(status, headers, raw, "committed-unacked" if replayed else "executed-late")
                    with self.lock:
                        counts["replayed" if replayed else "executed"] += 1
                        if op.kind == "create" and status == 201:
                            self.wallets.append(op.wallet)
            finally:
                conn.close()

        # Ops of one wallet are resolved by one thread, in send order.
        chunks = [[] for _ in range(threads)]
        for op in pending:
            chunks[hash(op.wallet) % threads].append(op)
        run_parallel([lambda c=c: resolve(c) for c in chunks])
        return counts["replayed"], counts["executed"]

    def check_replays(self, ops, threads=4):
        """Every op re-sent: the original status and bytes, marked replayed. Returns problems."""
        problems = []

        def check(chunk):
            conn = self.server.connect()
            try:
                for op in chunk:
                    status, headers, raw = send(conn, "POST", op.path, op.body,
                                                {"Idempotency-Key": op.key})
                    if (status, raw) != (op.status, op.raw):
                        problems.append(f"{op.key} {op.kind}: first {op.status} {op.raw!r}, "
                                        f"re-sent {status} {raw!r}")
                    elif headers.get("idempotent-replayed") != "true":
                        problems.append(f"{op.key}: re-sent reply not marked Idempotent-Replayed")
                    elif headers.get("x-wallex-position") != op.position:
                        problems.append(f"{op.key}: position {op.position} then "
                                        f"{headers.get('x-wallex-position')}")
            finally:
                conn.close()

        chunks = [ops[i::threads] for i in range(threads)]
        run_parallel([lambda c=c: check(c) for c in chunks])
        return problems


def run_parallel(functions):
    errors = []

    def wrap(f):
        try:
            f()
        except BaseException as e:  # noqa: BLE001 - re-raised below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(f,)) for f in functions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


# ====================================================================== the auditor

def audit(ops):
    """Checks the definitive replies against each other and the requests' amounts.

    Returns (expected {wallet: (balance_cents, version)}, problems)."""
    problems = []
    claims = {}  # wallet -> {version: (balance_cents, delta_cents, key)}

    def claim(wallet, version, balance, delta, key):
        versions = claims.setdefault(wallet, {})
        if version in versions:
            problems.append(f"{wallet} version {version} claimed by {versions[version][2]} and {key}")
        versions[version] = (balance, delta, key)

    for op in ops:
        if op.status is None:
            problems.append(f"{op.key} has no definitive reply")
            continue
        if op.status != 201:
            continue
        body = op.json()
        if op.kind == "create":
            claim(op.wallet, 0, 0, 0, op.key)
            if op.cents:
                claim(op.wallet, 1, op.cents, op.cents, op.key)
            if (body["version"], cents_of(body["balance"])) != ((1, op.cents) if op.cents else (0, 0)):
                problems.append(f"{op.key}: create replied {body}")
        elif op.kind in ("credit", "debit"):
            sign = 1 if op.kind == "credit" else -1
            claim(op.wallet, body["version"], cents_of(body["balance"]), sign * op.cents, op.key)
        else:
            source, target = body["fromWallet"], body["toWallet"]
            if (source["id"], target["id"]) != (op.wallet, op.to):
                problems.append(f"{op.key}: transfer replied for other wallets {body}")
            claim(op.wallet, source["version"], cents_of(source["balance"]), -op.cents, op.key)
            claim(op.to, target["version"], cents_of(target["balance"]), op.cents, op.key)

    expected = {}
    for wallet, versions in claims.items():
        top = max(versions)
        missing = sorted(set(range(top + 1)) - set(versions))
        if missing:
            problems.append(f"{wallet}: versions {missing[:10]} belong to no acknowledged request")
            continue
        balance = 0
        for version in range(top + 1):
            after, delta, key = versions[version]
            if balance + delta != after or after < 0:
                problems.append(f"{wallet} v{version} ({key}): {balance} + {delta} != {after}")
            balance = after
        expected[wallet] = (balance, top)
    return expected, problems


def compare_with_server(server, expected, threads=4):
    """GET /wallets/{id} of every wallet equals the audited balance and version."""
    problems = []
    wallets = sorted(expected)

    def check(chunk):
        conn = server.connect()
        try:
            for wallet in chunk:
                status, _, raw = send(conn, "GET", f"/wallets/{wallet}")
                if status != 200:
                    problems.append(f"GET {wallet}: {status} {raw!r}")
                    continue
                body = loads(raw)
                got = (cents_of(body["balance"]), body["version"])
                if got != expected[wallet]:
                    problems.append(f"{wallet}: server has {got}, model {expected[wallet]}")
        finally:
            conn.close()

    run_parallel([lambda c=c: check(c) for c in (wallets[i::threads] for i in range(threads))])
    return problems


def compare_ledger(server, expected):
    """Each wallet's ledger summary (read side) equals the model: one entry per money event,
    credits minus debits equal to the balance. Call once the projections have caught up."""
    problems = []
    conn = server.connect()
    try:
        for wallet, (balance, version) in sorted(expected.items()):
            status, _, raw = send(conn, "GET", f"/ledger/wallet/{wallet}/summary")
            if status != 200:
                problems.append(f"summary {wallet}: {status} {raw!r}")
                continue
            summary = loads(raw)
            net = cents_of(summary["totalCredits"]) - cents_of(summary["totalDebits"])
            # Every event but WalletCreated is one ledger entry: versions 1..N.
            if (summary["transactionCount"], net) != (version, balance):
                problems.append(f"ledger of {wallet}: {summary['transactionCount']} entries, net "
                                f"{net}; model {version} entries, balance {balance}")
    finally:
        conn.close()
    return problems


def compare_read_model(server, expected):
    """GET /wallets (the read model), every page: exactly the model's wallets, each with the
    model's balance and version. Call once the projections have caught up."""
    problems = []
    seen = {}
    conn = server.connect()
    try:
        after = None
        while True:
            path = "/wallets?limit=250" + (f"&after={after}" if after else "")
            status, headers, raw = send(conn, "GET", path)
            if status != 200:
                return [f"GET {path}: {status} {raw!r}"]
            for snapshot in loads(raw):
                if snapshot["id"] in seen:
                    problems.append(f"read model lists {snapshot['id']} twice")
                seen[snapshot["id"]] = (cents_of(snapshot["balance"]), snapshot["version"])
            after = headers.get("x-next-cursor")
            if not after:
                break
    finally:
        conn.close()
    if set(seen) != set(expected):
        problems.append(f"read model wallets differ: missing {sorted(set(expected) - set(seen))[:5]}, "
                        f"extra {sorted(set(seen) - set(expected))[:5]}")
    problems += [f"read model {w}: {seen[w]}, model {expected[w]}"
                 for w in sorted(set(seen) & set(expected)) if seen[w] != expected[w]]
    return problems


def verify(data_dir):
    """`wallex verify` on the data dir: (ok, output)."""
    code, out, err = tool("verify", "--data-dir", data_dir)
    return code == 0, out + err
