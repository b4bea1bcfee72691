"""Scale-out on PostgreSQL (issue 7): three `wallex serve` instances on one database.

Concurrent transfers, credits and debits over a few hot wallets are sent round-robin to every
instance; the instance holding the projection lease is killed with SIGKILL mid-run. A request
whose connection died with it is retried with the same Idempotency-Key on a live instance, which
either replays the committed outcome or executes it (it never committed). Afterwards: every
balance equals the model built from the acknowledged replies, total money is conserved, every
wallet's versions are contiguous, no request failed for contention (no 409, no 5xx), the
survivors took the projection lease over and their shared read side agrees, and
`wallex verify --store` passes. And a keyed request answered by one instance is replayed by the
others, byte for byte, from the compact form its reply is stored in.

Needs WALLEX_PG_URL (scripts/with-pg.sh); fails without it.
Run: scripts/with-pg.sh tests/e2e/run_pg.sh build/release/bin/wallex test_scale_out
"""

import http.client
import random
import subprocess
import threading
import time
import unittest
import uuid
from decimal import Decimal

import e2e_support as sup
from e2e_support import D, to_json
from wallex_server import WallexServer, create_database, drop_database, psql

INSTANCES = 3
HOT_WALLETS = 4
INITIAL = Decimal("1000.00")
THREADS = 12
OPERATIONS_PER_THREAD = 50
KILL_AFTER_OPERATIONS = THREADS * OPERATIONS_PER_THREAD // 3


class ScaleOutTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.url = create_database(sup.BIN)
        self.servers = []
        for n in range(INSTANCES):
            self.servers.append(WallexServer(
                sup.BIN, store_url=self.url,
                extra_args=("--instance-name", f"instance-{n}", "--min-position-wait-ms", "5000")))

    def tearDown(self):
        try:
            for server in self.servers:
                if server.is_running():
                    server.stop()
        finally:
            for server in self.servers:
                server.cleanup()
            drop_database(self.url)

    # ------------------------------------------------------------------ helpers

    def post(self, server, path, body, key):
        status, headers, raw = server.request("POST", path, to_json(body),
                                              {"Idempotency-Key": key}, timeout=30)
        return sup.Reply(status, headers, raw)

    def health(self, server):
        status, _, raw = server.request("GET", "/health")
        return sup.Reply(status, {}, raw).json

    def live(self):
        return [s for s in self.servers if s.is_running()]

    # ------------------------------------------------------------------ the test

    def test_round_robin_over_hot_wallets_survives_killing_an_instance(self):
        hot = [f"hot-{n}-{uuid.uuid4().hex[:8]}" for n in range(HOT_WALLETS)]
        for n, wid in enumerate(hot):
            reply = self.post(self.servers[n % INSTANCES], "/wallets",
                              {"walletId": wid, "ownerId": "o", "initialBalance": "1000.00"},
                              f"create-{wid}")
            self.assertEqual(reply.status, 201, reply)

        holder = self.health(self.servers[0])["projectionLease"]["holder"]
        victim = next(s for s in self.servers if s.extra_args[1] == holder)

        lock = threading.Lock()
        sent = [0]
        killed = threading.Event()
        acknowledged = []   # (kind, args, reply json) of every 2xx
        refused = []        # business refusals (400 INSUFFICIENT_FUNDS)
        failures = []       # anything else: must stay empty
        retried = [0]       # requests resolved on another instance after a dead connection

        def send(index, kind, path, body, key):
            # Round-robin over the instances; a dead one is skipped, the same key is retried.
            attempt = 0
            while True:
                servers = self.servers
                server = servers[(index + attempt) % len(servers)]
                attempt += 1
                if not server.is_running() and server is victim and killed.is_set():
                    continue
                try:
                    reply = self.post(server, path, body, key)
                except (OSError, http.client.HTTPException):
                    with lock:
                        retried[0] += 1
                    if attempt > 3 * INSTANCES:
                        failures.append((kind, "no instance answered", key))
                        return
                    time.sleep(0.05)
                    continue
                return reply

        def worker(t):
            rnd = random.Random(1000 + t)
            for i in range(OPERATIONS_PER_THREAD):
                with lock:
                    sent[0] += 1
                    if sent[0] == KILL_AFTER_OPERATIONS and not killed.is_set():
                        killed.set()
                        victim.kill9()
                kind = rnd.choice(["transfer", "transfer", "credit", "debit"])
                amount = Decimal(rnd.randint(1, 2000)) / 100
                key = f"scale-{t}-{i}-{uuid.uuid4().hex[:6]}"
                if kind == "transfer":
                    a, b = rnd.sample(hot, 2)
                    args = (a, b, amount)
                    reply = send(t + i, kind, f"/wallets/{a}/transfer",
                                 {"toWalletId": b, "amount": str(amount)}, key)
                else:
                    a = rnd.choice(hot)
                    args = (a, amount)
                    reply = send(t + i, kind, f"/wallets/{a}/{kind}", {"amount": str(amount)}, key)
                if reply is None:
                    continue
                with lock:
                    if reply.status == 201:
                        acknowledged.append((kind, args))
                    elif reply.status == 400 and reply.json.get("code") == "INSUFFICIENT_FUNDS":
                        refused.append((kind, args))
                    else:
                        failures.append((kind, args, reply.status, reply.text[:300]))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        self.assertTrue(killed.is_set())
        self.assertEqual(failures, [], f"{len(failures)} requests failed, e.g. {failures[:5]}")
        self.assertEqual(len(acknowledged) + len(refused), THREADS * OPERATIONS_PER_THREAD)
        self.assertGreater(len(acknowledged), THREADS * OPERATIONS_PER_THREAD // 2)

        # The model from the acknowledged replies.
        balance = {wid: INITIAL for wid in hot}
        changes = {wid: 1 for wid in hot}  # created at 0, initial credit at 1
        credited = Decimal(0)
        for kind, args in acknowledged:
            if kind == "transfer":
                a, b, amount = args
                balance[a] -= amount
                balance[b] += amount
                changes[a] += 1
                changes[b] += 1
            elif kind == "credit":
                balance[args[0]] += args[1]
                credited += args[1]
                changes[args[0]] += 1
            else:
                balance[args[0]] -= args[1]
                credited -= args[1]
                changes[args[0]] += 1

        survivors = self.live()
        self.assertEqual(len(survivors), INSTANCES - 1)
        for server in survivors:
            for wid in hot:
                status, _, raw = server.request("GET", f"/wallets/{wid}")
                self.assertEqual(status, 200, raw)
                wallet = sup.loads(raw)
                self.assertEqual(D(wallet["balance"]), balance[wid], wid)
                self.assertEqual(wallet["version"], changes[wid], wid)
        self.assertEqual(sum(balance.values()), INITIAL * HOT_WALLETS + credited)

        # Versions contiguous from 0 in the log; positions gap-free.
        rows = psql(self.url, "SELECT wallet_id, count(*), min(version), max(version)"
                              " FROM events GROUP BY wallet_id")
        for wid, count, low, high in rows:
            self.assertEqual((int(low), int(high)), (0, int(count) - 1), wid)
        (count, high), = psql(self.url, "SELECT count(*), coalesce(max(position), 0) FROM events")
        self.assertEqual(count, high)

        # The survivors took the projection lease over; the shared read side reaches the head
        # and agrees with the model on every instance.
        head = int(high)
        deadline = time.monotonic() + 20
        while True:
            health = self.health(survivors[0])
            lease = health["projectionLease"]["holder"]
            if lease and lease != holder and all(
                    p["position"] >= head for p in health["projections"].values()):
                break
            self.assertLess(time.monotonic(), deadline, f"no failover: {health}")
            time.sleep(0.1)
        for server in survivors:
            for wid in hot:
                status, _, raw = server.request(
                    "GET", f"/ledger/wallet/{wid}/summary?minPosition={head}")
                self.assertEqual(status, 200, raw)
                summary = sup.loads(raw)
                self.assertEqual(summary["transactionCount"], changes[wid], wid)
                self.assertEqual(D(summary["totalCredits"]) - D(summary["totalDebits"]),
                                 balance[wid], wid)

        for server in survivors:
            server.stop()
        done = subprocess.run([sup.BIN, "verify", "--store", self.url], capture_output=True,
                              text=True, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("verify: OK", done.stdout)
        print(f"\nscale-out: {len(acknowledged)} acknowledged, {len(refused)} refused for funds, "
              f"{retried[0]} resolved on another instance after the kill; lease {holder} -> "
              f"{lease}", flush=True)

    def test_a_keyed_request_is_replayed_by_every_instance(self):
        """A key answered by one instance is replayed by the others, byte for byte.

        The store keeps a snapshot's or a transfer's reply in a compact form and rebuilds it
        from the wallets it names (service/reply_encoding.h). The other instances have never
        seen those wallets when the replay reaches them: they read them from the database.
        """
        first_server, others = self.servers[0], self.servers[1:]
        src, dst, new = (f"{name}-{uuid.uuid4().hex[:8]}" for name in ("src", "dst", "new"))
        tag = uuid.uuid4().hex[:8]
        requests = [
            ("/wallets", {"walletId": src, "ownerId": "o-src", "initialBalance": "100.00"}),
            ("/wallets", {"walletId": dst, "ownerId": "o-dst"}),
            (f"/wallets/{src}/credit", {"amount": "12.34", "description": "tip"}),
            (f"/wallets/{src}/debit", {"amount": "2.30"}),
            (f"/wallets/{src}/transfer", {"toWalletId": dst, "amount": "50.05"}),
            (f"/wallets/{src}/debit", {"amount": "1000.00"}),                        # refused
            (f"/wallets/{dst}/transfer", {"toWalletId": src, "amount": "999.00"}),   # refused
            ("/wallets", {"walletId": new, "ownerId": "o-new", "initialBalance": "7.00"}),
        ]
        expected = [201, 201, 201, 201, 201, 400, 400, 201]
        firsts = []
        for n, (path, body) in enumerate(requests):
            key = f"replay-{tag}-{n}"
            first = self.post(first_server, path, body, key)
            self.assertEqual(first.status, expected[n], first)
            self.assertIsNone(first.replayed, first)
            firsts.append(first)
            for server in others:
                again = self.post(server, path, body, key)
                self.assertEqual(again.status, first.status, (path, again))
                self.assertEqual(again.raw, first.raw, path)
                self.assertEqual(again.replayed, "true", (path, again))
        self.assertEqual(firsts[5].json["code"], "INSUFFICIENT_FUNDS")
        self.assertEqual(firsts[6].json["code"], "INSUFFICIENT_FUNDS")
        # Once every wallet has moved on, each key still answers with its first reply, on the
        # last instance too (its wallets are now known to it at their newest state).
        for n, (path, body) in enumerate(requests):
            again = self.post(others[-1], path, body, f"replay-{tag}-{n}")
            self.assertEqual(again.raw, firsts[n].raw, path)
            self.assertEqual(again.replayed, "true", (path, again))

        # A key of one instance with another request on a second one: refused, nothing done.
        reused = self.post(others[-1], f"/wallets/{src}/credit", {"amount": "99.00"},
                           f"replay-{tag}-2")
        self.assertEqual(reused.status, 409, reused)
        self.assertEqual(reused.json["code"], "IDEMPOTENCY_KEY_REUSED")

        # The replays changed nothing: every instance reads the state the first replies left.
        transfer = firsts[4].json
        for server in self.servers:
            for wallet in (transfer["fromWallet"], transfer["toWallet"]):
                status, _, raw = server.request("GET", f"/wallets/{wallet['id']}")
                self.assertEqual(status, 200, raw)
                self.assertEqual(sup.loads(raw), wallet)
        (events,), = psql(self.url, "SELECT count(*) FROM events")
        # Two wallets created with a balance (two events each), one without, a credit, a debit,
        # a transfer (two events); the refusals wrote none.
        self.assertEqual(int(events), 2 * 2 + 1 + 1 + 1 + 2)


if __name__ == "__main__":
    unittest.main()
