"""Concurrency end-to-end tests: many client threads against one Wallex server.

Run: WALLEX_BIN=/path/to/wallex python3 -m unittest -v test_concurrency   (from tests/e2e)
"""

import http.client
import random
import threading
import time
import unittest
from collections import Counter, defaultdict
from decimal import Decimal

import e2e_support as sup
from e2e_support import D, uid, new_key
from wallex_server import WallexServer, build_request, loads

CREDIT = Decimal("2.5")
DEBIT = Decimal("1.25")


class Outcome:
    """One request's result as seen by a client thread."""

    def __init__(self, kind, status=None, raw=b"", headers=None, error=None, extra=None):
        self.kind = kind            # "credit", "debit", "transfer", ...
        self.status = status
        self.raw = raw
        self.headers = headers or {}
        self.error = error          # exception text for connection errors
        self.extra = extra or {}
        self.body = None
        if raw:
            try:
                self.body = loads(raw)
            except ValueError:
                pass

    @property
    def code(self):
        return self.body.get("code") if isinstance(self.body, dict) else None

    def __repr__(self):
        return f"<{self.kind} {self.status} {self.error or self.raw[:200]!r}>"


def send(server, kind, method, path, body, key=None, extra=None):
    headers = {"Idempotency-Key": key} if key else {}
    try:
        status, hdrs, raw = server.request(method, path, body, headers)
    except OSError as e:
        return Outcome(kind, error=repr(e), extra=extra)
    return Outcome(kind, status, raw, hdrs, extra=extra)


class HotWalletTests(sup.ServerTestCase):
    """50 threads x 40 credits/debits on ONE wallet: no lost update, no spurious failure."""

    THREADS = 50
    PER_THREAD = 40

    def test_hot_wallet_credits_and_debits(self):
        wid = self.new_wallet(initial=1000)
        results = [[] for _ in range(self.THREADS)]

        def worker(t):
            rng = random.Random(1000 + t)
            for _ in range(self.PER_THREAD):
                if rng.random() < 0.5:
                    results[t].append(send(self.server, "credit", "POST", f"/wallets/{wid}/credit",
                                           '{"amount":2.5}', new_key()))
                else:
                    results[t].append(send(self.server, "debit", "POST", f"/wallets/{wid}/debit",
                                           '{"amount":1.25}', new_key()))

        sup.run_threads(self.THREADS, worker)
        outcomes = [o for per_thread in results for o in per_thread]
        self.assertEqual(len(outcomes), self.THREADS * self.PER_THREAD)

        ok = [o for o in outcomes if o.status == 201]
        insufficient = [o for o in outcomes
                        if o.kind == "debit" and o.status == 400 and o.code == "INSUFFICIENT_FUNDS"]
        bad = [o for o in outcomes if o.status != 201 and o not in insufficient]
        self.assertEqual(bad, [], f"{len(bad)} unexpected responses, e.g. {bad[:5]}")
        credits_ok = sum(1 for o in ok if o.kind == "credit")
        debits_ok = sum(1 for o in ok if o.kind == "debit")
        if insufficient:
            print(f"\n  note: {len(insufficient)} debits were INSUFFICIENT_FUNDS")

        final = self.wallet(wid)
        expected = Decimal(1000) + CREDIT * credits_ok - DEBIT * debits_ok
        self.assertEqual(D(final["balance"]), expected, final)
        self.assertEqual(final["version"], 1 + len(ok), final)

        # Each success reports the snapshot right after its own operation: ordering the replies
        # by version must replay a serial history (distinct versions 2..1+n, exact deltas).
        by_version = sorted(ok, key=lambda o: o.body["version"])
        self.assertEqual([o.body["version"] for o in by_version], list(range(2, 2 + len(ok))))
        balance = Decimal(1000)
        for o in by_version:
            self.check_snapshot(o.body, id=wid)
            balance += CREDIT if o.kind == "credit" else -DEBIT
            self.assertEqual(D(o.body["balance"]), balance, o)
        self.assertEqual(balance, expected)
        positions = [int(o.headers["x-wallex-position"]) for o in ok]
        self.assertEqual(len(set(positions)), len(positions), "positions must be unique")
        # Positions follow the wallet's order of versions.
        self.assertEqual([int(o.headers["x-wallex-position"]) for o in by_version],
                         sorted(positions))


class TransferStormTests(sup.ServerTestCase):
    """20 threads of random transfers among 10 wallets: money conserved, versions exact."""

    THREADS = 20
    PER_THREAD = 50
    WALLETS = 10

    def test_random_transfers_conserve_money(self):
        wallets = [self.new_wallet(initial=1000) for _ in range(self.WALLETS)]
        initial = {w: self.wallet(w) for w in wallets}
        total = sum(D(s["balance"]) for s in initial.values())
        self.assertEqual(total, Decimal(1000 * self.WALLETS))
        results = [[] for _ in range(self.THREADS)]

        def worker(t):
            rng = random.Random(2000 + t)
            for _ in range(self.PER_THREAD):
                src, dst = rng.sample(wallets, 2)
                amount = Decimal(rng.randint(1, 20000)) / 100      # 0.01 .. 200.00
                text = f'"{amount}"' if rng.random() < 0.3 else str(amount)
                body = f'{{"toWalletId":"{dst}","amount":{text}}}'
                results[t].append(send(self.server, "transfer", "POST",
                                       f"/wallets/{src}/transfer", body, new_key(),
                                       extra={"src": src, "dst": dst, "amount": amount}))

        sup.run_threads(self.THREADS, worker)
        outcomes = [o for per_thread in results for o in per_thread]
        ok = [o for o in outcomes if o.status == 201]
        insufficient = [o for o in outcomes if o.status == 400 and o.code == "INSUFFICIENT_FUNDS"]
        bad = [o for o in outcomes if o.status != 201 and o not in insufficient]
        self.assertEqual(bad, [], f"{len(bad)} unexpected responses, e.g. {bad[:5]}")
        self.assertGreater(len(ok), 0)

        touches = Counter()
        reported_versions = defaultdict(list)
        net = defaultdict(Decimal)
        for o in ok:
            src, dst, amount = o.extra["src"], o.extra["dst"], o.extra["amount"]
            touches[src] += 1
            touches[dst] += 1
            net[src] -= amount
            net[dst] += amount
            self.check_snapshot(o.body["fromWallet"], id=src)
            self.check_snapshot(o.body["toWallet"], id=dst)
            self.assertRegex(o.body["transferId"], sup.UUID_RE)
            reported_versions[src].append(o.body["fromWallet"]["version"])
            reported_versions[dst].append(o.body["toWallet"]["version"])
        self.assertEqual(len({o.body["transferId"] for o in ok}), len(ok))

        finals = {w: self.wallet(w) for w in wallets}
        self.assertEqual(sum(D(s["balance"]) for s in finals.values()), total,
                         "money must be conserved exactly")
        for w in wallets:
            with self.subTest(wallet=w):
                start = initial[w]["version"]
                self.assertEqual(finals[w]["version"], start + touches[w])
                self.assertEqual(D(finals[w]["balance"]), D(initial[w]["balance"]) + net[w])
                self.assertEqual(sorted(reported_versions[w]),
                                 list(range(start + 1, start + 1 + touches[w])))


class ConcurrentSameRequestTests(sup.ServerTestCase):
    """The same request sent concurrently: one effect, never two."""

    def test_same_idempotency_key_from_many_threads(self):
        wid = self.new_wallet()
        n = 10
        rounds = 10
        for round_no in range(1, rounds + 1):
            key = new_key()
            barrier = threading.Barrier(n)
            replies = [None] * n

            def worker(i):
                barrier.wait()
                replies[i] = send(self.server, "credit", "POST", f"/wallets/{wid}/credit",
                                  '{"amount":1}', key)

            sup.run_threads(n, worker)
            fresh = [r for r in replies if r.status == 201
                     and r.headers.get("idempotent-replayed") is None]
            replayed = [r for r in replies if r.status == 201
                        and r.headers.get("idempotent-replayed") == "true"]
            in_flight = [r for r in replies if r.status == 409
                         and str(r.code).startswith("IDEMPOTENCY_")]
            self.assertEqual(len(fresh), 1, replies)
            self.assertEqual(len(fresh) + len(replayed) + len(in_flight), n, replies)
            for r in replayed:
                self.assertEqual(r.raw, fresh[0].raw)
            self.assertEqual(fresh[0].body["version"], round_no)
            self.assert_wallet(wid, round_no, round_no)

    def test_same_wallet_created_from_many_threads(self):
        n = 20
        for _ in range(5):
            wid = uid()
            barrier = threading.Barrier(n)
            replies = [None] * n

            def worker(i):
                barrier.wait()
                replies[i] = send(self.server, "create", "POST", "/wallets",
                                  {"walletId": wid, "ownerId": f"owner-{i}", "initialBalance": 5})

            sup.run_threads(n, worker)
            created = [r for r in replies if r.status == 201]
            conflicts = [r for r in replies if r.status == 409 and r.code == "WALLET_ALREADY_EXISTS"]
            self.assertEqual(len(created), 1, replies)
            self.assertEqual(len(conflicts), n - 1, replies)
            snap = self.assert_wallet(wid, "5", 1)
            self.assertEqual(snap["ownerId"], created[0].body["ownerId"])

    def test_concurrent_debits_never_overdraw(self):
        wid = self.new_wallet(initial=10)
        n = 30
        barrier = threading.Barrier(n)
        replies = [None] * n

        def worker(i):
            barrier.wait()
            replies[i] = send(self.server, "debit", "POST", f"/wallets/{wid}/debit",
                              '{"amount":"1.00"}', new_key())

        sup.run_threads(n, worker)
        ok = [r for r in replies if r.status == 201]
        refused = [r for r in replies if r.status == 400 and r.code == "INSUFFICIENT_FUNDS"]
        self.assertEqual(len(ok), 10, replies)
        self.assertEqual(len(refused), n - 10, replies)
        self.assert_wallet(wid, "0", 11)


class SeveralIoThreadsTests(sup.ServerTestCase):
    """The server with four HTTP I/O threads (the default is one, where Asio runs without
    strands): commands, reads, read-side queries and health checks on kept-alive connections
    from many clients at once, and a stop while connections keep arriving. Under the TSan build
    a data race in the server fails these tests (its report stops the server)."""

    SERVER_ARGS = ("--http-threads", "4")
    THREADS = 12
    PER_THREAD = 30
    WALLETS = 6

    def test_mixed_requests_on_kept_alive_connections(self):
        wallets = [self.new_wallet(initial=1000) for _ in range(self.WALLETS)]
        created_position = self.server.last_position  # the ledger knows the wallets from here
        total = Decimal(1000 * self.WALLETS)
        results = [[] for _ in range(self.THREADS)]

        def worker(t):
            rng = random.Random(3000 + t)
            conn = self.server.connect()
            try:
                for _ in range(self.PER_THREAD):
                    src, dst = rng.sample(wallets, 2)
                    kind = rng.choice(["credit", "transfer", "wallet", "ledger", "health"])
                    if kind == "credit":
                        request = ("POST", f"/wallets/{src}/credit", '{"amount":"0.50"}',
                                   {"Idempotency-Key": new_key()})
                    elif kind == "transfer":
                        amount = Decimal(rng.randint(1, 5000)) / 100
                        body = f'{{"toWalletId":"{dst}","amount":"{amount}"}}'
                        request = ("POST", f"/wallets/{src}/transfer", body,
                                   {"Idempotency-Key": new_key()})
                    elif kind == "wallet":
                        request = ("GET", f"/wallets/{src}", None, {})
                    elif kind == "ledger":
                        # Waits on the query thread for the projection, answered via the mailbox.
                        position = max([created_position] +
                                       [int(o.headers.get("x-wallex-position", 0))
                                        for o in results[t] if o.kind in ("credit", "transfer")])
                        request = ("GET", f"/ledger/wallet/{src}?minPosition={position}&limit=5",
                                   None, {})
                    else:
                        request = ("GET", "/health", None, {})
                    method, path, body, headers = request
                    status, hdrs, raw = self.server.request_on(conn, method, path, body, headers)
                    results[t].append(Outcome(kind, status, raw, hdrs))
            finally:
                conn.close()

        sup.run_threads(self.THREADS, worker)
        outcomes = [o for per_thread in results for o in per_thread]
        self.assertEqual(len(outcomes), self.THREADS * self.PER_THREAD)
        expected = {"credit": {201}, "transfer": {201, 400}, "wallet": {200}, "ledger": {200},
                    "health": {200}}
        bad = [o for o in outcomes if o.status not in expected[o.kind]
               or (o.status == 400 and o.code != "INSUFFICIENT_FUNDS")]
        self.assertEqual(bad, [], f"{len(bad)} unexpected responses, e.g. {bad[:5]}")
        credited = Decimal("0.50") * sum(1 for o in outcomes if o.kind == "credit")
        finals = [self.wallet(w) for w in wallets]
        self.assertEqual(sum(D(s["balance"]) for s in finals), total + credited)

    def test_stop_while_connections_arrive(self):
        server = WallexServer(sup.BIN, extra_args=self.SERVER_ARGS)
        wid = uid()
        status, _, raw = server.request("POST", "/wallets", {"walletId": wid, "ownerId": "o"})
        self.assertEqual(status, 201, raw)
        stopping = threading.Event()
        statuses = [[] for _ in range(8)]

        def client(t):
            # Fresh connections all the time, so the acceptor and the I/O threads are busy when
            # the server closes the acceptor.
            while not stopping.is_set():
                try:
                    if t % 2 == 0:
                        # A request nobody waits for: the cheapest way to keep connections coming.
                        with server.raw_socket(timeout=10) as s:
                            s.sendall(build_request("GET", "/health"))
                    elif t % 4 == 1:
                        status, _, _ = server.request("GET", "/health", timeout=10)
                        statuses[t].append(status)
                    else:
                        status, _, _ = server.request("POST", f"/wallets/{wid}/credit",
                                                      '{"amount":1}', timeout=10)
                        statuses[t].append(status)
                except (OSError, http.client.HTTPException):
                    pass  # refused or cut off once the server stops

        threads = [threading.Thread(target=client, args=(t,)) for t in range(len(statuses))]
        try:
            for thread in threads:
                thread.start()
            time.sleep(1.0)
            server.stop()  # SIGTERM while requests arrive: must exit 0
        finally:
            stopping.set()
            for thread in threads:
                thread.join()
            server.cleanup()
        answered = [s for per_client in statuses for s in per_client]
        self.assertGreater(len(answered), 0)
        self.assertEqual([s for s in answered if s not in (200, 201, 503)], [])


if __name__ == "__main__":
    unittest.main()
