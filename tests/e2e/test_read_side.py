"""End-to-end tests of the read side: GET /wallets, the /ledger endpoints, event history, time
travel, minPosition, projection health, kill -9 while projections are behind, `wallex rebuild`
and `wallex verify`.

Run: WALLEX_BIN=/path/to/wallex python3 -m unittest -v test_read_side   (from tests/e2e)
"""

import os
import random
import sqlite3
import subprocess
import threading
import time
import unittest
from decimal import Decimal

import e2e_support as sup
from e2e_support import D, Raw, uid
from wallex_server import WallexServer, sanitizer_report

ENTRY_KEYS = ["id", "walletId", "transactionType", "amount", "balanceBefore", "balanceAfter",
              "description", "referenceId", "relatedWalletId", "metadata", "createdAt"]
EVENT_KEYS = ["position", "version", "type", "data", "metadata", "occurredAt"]
FIXED2_RE = r"^(0|[1-9][0-9]*)\.[0-9]{2}$"
WAIT_MS = 400  # --min-position-wait-ms of the servers started here


def tool(*args, timeout=120):
    """Runs `wallex <args>`; returns (exit code, stdout, stderr)."""
    done = subprocess.run([sup.BIN, *args], capture_output=True, text=True, timeout=timeout)
    report = sanitizer_report(done.stderr)
    if report is not None:
        raise AssertionError(f"sanitizer report from wallex {' '.join(args)}:\n{report}")
    return done.returncode, done.stdout, done.stderr


def dump_read_db(server):
    """Every row of every projection table of the read side, in a stable order."""
    out = {}
    for table, order in [("read_wallets", "id"), ("ledger_wallets", "wallet_id"),
                         ("ledger_entries", "position"), ("wallet_events", "position"),
                         ("event_wallets", "wallet_id")]:
        out[table] = server.query(f"SELECT * FROM {table} ORDER BY {order}", "read")
    checkpoints = "projection_checkpoints" if server.store_url else "checkpoints"
    out["checkpoints"] = server.query(
        f"SELECT projector, position FROM {checkpoints} ORDER BY projector", "read")
    return out


class ProjectionBlocker:
    """Keeps the projector from committing while it is held: read.db's write lock on SQLite;
    on PostgreSQL, projection_checkpoints locked EXCLUSIVE by a psql session of its own."""

    def __init__(self, server):
        self.server = server
        if server.store_url:
            self.name = f"wallex-e2e-blocker-{os.getpid()}"
            self.proc = subprocess.Popen(
                ["psql", server.store_url, "-X", "-q", "-c",
                 "BEGIN; LOCK TABLE projection_checkpoints IN EXCLUSIVE MODE;"
                 " SELECT pg_sleep(120);"],
                env={**os.environ, "PGAPPNAME": self.name},
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while not server.query("SELECT 1 FROM pg_locks AS l JOIN pg_class AS c ON"
                                   " c.oid = l.relation WHERE c.relname = 'projection_checkpoints'"
                                   " AND l.mode = 'ExclusiveLock' AND l.granted"):
                if time.monotonic() > deadline:
                    raise AssertionError("the blocker did not get its lock")
                time.sleep(0.05)
        else:
            self.db = sqlite3.connect(os.path.join(server.data_dir, "read.db"), timeout=0,
                                      isolation_level=None)
            self.db.execute("BEGIN IMMEDIATE")

    def close(self):
        if self.server.store_url:
            # A backend inside pg_sleep does not notice its client going away: end it.
            self.server.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                              f" WHERE application_name = '{self.name}'")
            self.proc.kill()
            self.proc.wait()
        else:
            self.db.close()


class ReadSideCase(sup.ServerTestCase):
    """One server per class, with a short minPosition wait so timeouts are quick to test."""

    @classmethod
    def setUpClass(cls):
        cls.server = WallexServer(sup.BIN, extra_args=("--min-position-wait-ms", str(WAIT_MS)))
        cls.server.last_position = 0

    def read(self, path, status=200):
        """GET of a read-side path after everything written so far is projected."""
        sep = "&" if "?" in path else "?"
        reply = self.get(f"{path}{sep}minPosition={self.server.last_position}")
        self.assertEqual(reply.status, status, reply)
        if status == 200:
            self.assertRegex(reply.headers.get("x-wallex-position", ""), r"^[0-9]+$")
        return reply

    def ledger(self, wallet_id, query=""):
        reply = self.read(f"/ledger/wallet/{wallet_id}?limit=1000{query}")
        body = reply.json
        self.assertEqual(list(body.keys()), ["walletId", "count", "transactions"])
        self.assertEqual(body["walletId"], wallet_id)
        self.assertEqual(body["count"], len(body["transactions"]))
        for entry in body["transactions"]:
            self.check_entry(entry)
        return body["transactions"]

    def check_entry(self, entry):
        self.assertEqual(list(entry.keys()), ENTRY_KEYS, entry)
        self.assertRegex(entry["id"], sup.UUID_RE)
        self.assertIn(entry["transactionType"], ("CREDIT", "DEBIT", "TRANSFER_OUT", "TRANSFER_IN"))
        for key in ("amount", "balanceBefore", "balanceAfter"):
            self.assertIsInstance(entry[key], str)
            self.assertRegex(entry[key], FIXED2_RE)
        adds = entry["transactionType"] in ("CREDIT", "TRANSFER_IN")
        delta = D(entry["amount"]) if adds else -D(entry["amount"])
        self.assertEqual(D(entry["balanceBefore"]) + delta, D(entry["balanceAfter"]), entry)
        self.assertRegex(entry["createdAt"], sup.TS_RE)
        self.assertIsInstance(entry["metadata"], dict)
        self.assertEqual(entry["metadata"]["occurredAt"], entry["createdAt"])
        if entry["transactionType"].startswith("TRANSFER"):
            self.assertIsInstance(entry["relatedWalletId"], str)
        else:
            self.assertIsNone(entry["relatedWalletId"])


# ====================================================================== queries

class WalletListTests(ReadSideCase):

    def test_list_is_ordered_by_id_with_a_cursor_header(self):
        owner = uid("owner")
        ids = sorted(f"list-{uid()}" for _ in range(7))
        for wid in ids:
            self.create_wallet(wid, owner_id=owner, initial="1.5")
        first = self.read(f"/wallets?ownerId={owner}&limit=3")
        self.assertEqual([w["id"] for w in first.json], ids[:3])
        for snap in first.json:
            self.check_snapshot(snap, owner=owner, balance="1.5", version=1)
        self.assertEqual(first.headers.get("x-next-cursor"), ids[2])
        second = self.read(f"/wallets?ownerId={owner}&limit=3&after={ids[2]}")
        self.assertEqual([w["id"] for w in second.json], ids[3:6])
        third = self.read(f"/wallets?ownerId={owner}&limit=3&after={second.headers['x-next-cursor']}")
        self.assertEqual([w["id"] for w in third.json], ids[6:])
        self.assertNotIn("x-next-cursor", third.headers)

    def test_pages_of_all_wallets_cover_each_wallet_once(self):
        created = {self.new_wallet() for _ in range(5)}
        seen, after = [], ""
        while True:
            reply = self.read(f"/wallets?limit=2" + (f"&after={after}" if after else ""))
            seen += [w["id"] for w in reply.json]
            after = reply.headers.get("x-next-cursor")
            if not after:
                break
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertTrue(created <= set(seen))

    def test_snapshots_equal_the_authoritative_ones(self):
        wid = self.new_wallet(initial=Raw("10.10"))
        self.credit(wid, Raw("0.2"))
        listed = [w for w in self.read(f"/wallets?after={wid[:-1]}&limit=1000").json if w["id"] == wid]
        self.assertEqual(listed, [self.wallet(wid)])

    def test_invalid_parameters_are_400(self):
        for query in ["limit=0", "limit=1001", "limit=abc", "limit=", "limit=1&limit=2",
                      "after=bad%20id", "ownerId=", "minPosition=-1", "minPosition=x", "after=%zz"]:
            with self.subTest(query=query):
                self.assert_error(self.get(f"/wallets?{query}"), 400, "INVALID_QUERY")

    def test_default_and_maximum_limits(self):
        self.assertEqual(self.read("/wallets?limit=1000").status, 200)
        self.assertLessEqual(len(self.read("/wallets").json), 100)


class LedgerTests(ReadSideCase):

    def test_initial_balance_is_one_credit_counted_once(self):
        wid = self.new_wallet(initial=100)
        entries = self.ledger(wid)
        self.assertEqual(len(entries), 1)
        e = entries[0]
        self.assertEqual((e["transactionType"], e["amount"], e["balanceBefore"], e["balanceAfter"]),
                         ("CREDIT", "100.00", "0.00", "100.00"))
        self.assertEqual(e["description"], "Initial balance")
        self.assertEqual(e["referenceId"], f"{wid}:1")
        summary = self.read(f"/ledger/wallet/{wid}/summary").json
        self.assertEqual(summary["totalCredits"], 100)
        self.assertEqual(summary["transactionCount"], 1)

    def test_amounts_are_exact_two_decimal_strings(self):
        wid = self.new_wallet()
        self.credit(wid, Raw("0.1"))
        self.credit(wid, Raw("0.2"))
        self.debit(wid, Raw("0.05"))
        entries = self.ledger(wid)
        self.assertEqual([e["amount"] for e in entries], ["0.05", "0.20", "0.10"])
        self.assertEqual(entries[0]["balanceAfter"], "0.25")
        reply = self.read(f"/ledger/wallet/{wid}/summary")
        self.assertIn('"totalCredits":0.3,"totalDebits":0.05,', reply.text)

    def test_transfer_entries_share_the_transfer_id_and_name_each_other(self):
        a, b = self.new_wallet(initial=50), self.new_wallet()
        transfer_id = self.transfer(a, b, Raw("12.34")).json["transferId"]
        out = self.ledger(a)[0]
        inn = self.ledger(b)[0]
        self.assertEqual((out["transactionType"], out["relatedWalletId"]), ("TRANSFER_OUT", b))
        self.assertEqual((inn["transactionType"], inn["relatedWalletId"]), ("TRANSFER_IN", a))
        self.assertEqual(out["referenceId"], transfer_id)
        self.assertEqual(inn["referenceId"], transfer_id)
        self.assertEqual(out["amount"], inn["amount"])
        by_ref = self.read(f"/ledger/reference/{transfer_id}").json
        self.assertEqual(list(by_ref.keys()), ["referenceId", "count", "transactions"])
        self.assertEqual(by_ref["count"], 2)
        self.assertEqual({e["id"] for e in by_ref["transactions"]}, {out["id"], inn["id"]})

    def test_mixed_workload_entries_sum_to_balances(self):
        rnd = random.Random(4)
        wallets = [self.new_wallet(initial=rnd.choice([0, 10, Raw("99.99")])) for _ in range(6)]
        for _ in range(120):
            a, b = rnd.sample(wallets, 2)
            amount = Raw(f"{rnd.randint(0, 30)}.{rnd.randint(0, 99):02d}")
            if amount == Raw("0.00"):
                continue
            op = rnd.choice(["credit", "debit", "transfer"])
            if op == "credit":
                self.credit(a, amount)
            elif op == "debit":
                self.debit(a, amount, expect=None)
            else:
                self.transfer(a, b, amount, expect=None)
        for wid in wallets:
            snap = self.wallet(wid)
            entries = self.ledger(wid)
            credits = sum(D(e["amount"]) for e in entries if e["transactionType"] in ("CREDIT", "TRANSFER_IN"))
            debits = sum(D(e["amount"]) for e in entries if e["transactionType"] in ("DEBIT", "TRANSFER_OUT"))
            self.assertEqual(credits - debits, D(snap["balance"]), wid)
            # newest first, each entry continuing the previous one
            for newer, older in zip(entries, entries[1:]):
                self.assertEqual(newer["balanceBefore"], older["balanceAfter"])
                self.assertGreaterEqual(newer["createdAt"], older["createdAt"])
            if entries:
                self.assertEqual(D(entries[0]["balanceAfter"]), D(snap["balance"]))
            summary = self.read(f"/ledger/wallet/{wid}/summary").json
            self.assertEqual(D(summary["totalCredits"]), credits)
            self.assertEqual(D(summary["totalDebits"]), debits)
            self.assertEqual(summary["transactionCount"], len(entries))
            if entries:
                self.assertEqual(summary["lastTransaction"], entries[0])
            else:
                self.assertNotIn("lastTransaction", summary)

    def test_filters_and_pagination_return_exact_slices(self):
        a, b = self.new_wallet(initial=100), self.new_wallet(initial=100)
        for i in range(4):
            self.credit(a, i + 1)
            time.sleep(0.003)
            self.debit(a, Raw("0.5"))
            time.sleep(0.003)
            self.transfer(a, b, 1)
            time.sleep(0.003)
        full = self.ledger(a)
        self.assertEqual(len(full), 13)
        for limit, offset in [(1, 0), (5, 0), (5, 5), (5, 10), (5, 13), (50, 3)]:
            with self.subTest(limit=limit, offset=offset):
                page = self.read(f"/ledger/wallet/{a}?limit={limit}&offset={offset}").json
                self.assertEqual(page["transactions"], full[offset:offset + limit])
        for kind in ("CREDIT", "DEBIT", "TRANSFER_OUT", "TRANSFER_IN"):
            with self.subTest(kind=kind):
                got = self.ledger(a, f"&transactionType={kind}")
                self.assertEqual(got, [e for e in full if e["transactionType"] == kind])
        # A time window of a few entries, inclusive at both ends.
        start, end = full[9]["createdAt"], full[3]["createdAt"]
        window = self.ledger(a, f"&startDate={start}&endDate={end}")
        self.assertEqual(window, [e for e in full if start <= e["createdAt"] <= end])
        self.assertEqual(self.ledger(a, f"&startDate={full[0]['createdAt']}")[0], full[0])
        self.assertEqual(self.ledger(a, "&endDate=2000-01-01"), [])
        self.assertEqual(len(self.read(f"/ledger/wallet/{a}").json["transactions"]), 13)  # default 50

    def test_ledger_transactions_across_wallets(self):
        a, b = self.new_wallet(initial=10), self.new_wallet()
        self.transfer(a, b, 3)
        body = self.read("/ledger/transactions?transactionType=TRANSFER_IN&limit=5").json
        self.assertEqual(list(body.keys()), ["count", "transactions"])
        self.assertLessEqual(body["count"], 5)
        self.assertTrue(all(e["transactionType"] == "TRANSFER_IN" for e in body["transactions"]))
        self.assertEqual(body["transactions"][0]["walletId"], b)  # newest first
        default = self.read("/ledger/transactions").json
        self.assertLessEqual(default["count"], 50)

    def test_unknown_wallets_and_references_are_empty(self):
        nobody = uid("nobody")
        self.assertEqual(self.read(f"/ledger/wallet/{nobody}").json,
                         {"walletId": nobody, "count": 0, "transactions": []})
        self.assertEqual(self.read(f"/ledger/wallet/{nobody}/summary").json,
                         {"walletId": nobody, "totalCredits": 0, "totalDebits": 0, "transactionCount": 0})
        self.assertEqual(self.read("/ledger/reference/no-such-ref").json,
                         {"referenceId": "no-such-ref", "count": 0, "transactions": []})

    def test_invalid_filters_are_400_not_500(self):
        wid = self.new_wallet()
        for query in ["transactionType=FOO", "transactionType=credit", "startDate=yesterday",
                      "endDate=2026-13-01", "startDate=2026-02-02&endDate=2026-02-01", "limit=0",
                      "limit=1001", "limit=x", "offset=-1", "offset=1.5", "offset=100001",
                      "minPosition=abc"]:
            for path in (f"/ledger/wallet/{wid}", "/ledger/transactions"):
                with self.subTest(path=path, query=query):
                    self.assert_error(self.get(f"{path}?{query}"), 400, "INVALID_QUERY")
        # The plain wallet read needs no wait, but refuses a malformed minPosition all the same.
        for query in ["minPosition=abc", "minPosition=-1"]:
            with self.subTest(query=query):
                self.assert_error(self.get(f"/wallets/{wid}?{query}"), 400, "INVALID_QUERY")
        self.assertEqual(self.get(f"/wallets/{wid}?minPosition=1").status, 200)
        self.assert_error(self.get("/ledger/wallet/bad%20id"), 400, "INVALID_WALLET_ID")
        self.assert_error(self.get("/ledger/reference/bad%20ref"), 400, "INVALID_QUERY")

    def test_routes_and_methods(self):
        self.assert_error(self.get("/ledger/wallet"), 404, "ROUTE_NOT_FOUND")
        self.assert_error(self.get("/ledger/wallet/x/other"), 404, "ROUTE_NOT_FOUND")
        self.assert_error(self.get("/ledger/nope"), 404, "ROUTE_NOT_FOUND")
        r = self.call("POST", "/ledger/transactions", {})
        self.assert_error(r, 405, "METHOD_NOT_ALLOWED")
        self.assertEqual(r.headers["allow"], "GET")
        r = self.call("DELETE", "/wallets")
        self.assertEqual(r.headers["allow"], "GET, POST")

    def test_concurrent_credits_are_all_entries(self):
        wid = self.new_wallet()
        positions = []

        def work(i):
            reply = self.server.request("POST", f"/wallets/{wid}/credit", {"amount": "1.01"})
            self.assertEqual(reply[0], 201)
            positions.append(int(reply[1]["x-wallex-position"]))

        sup.run_threads(20, work)
        self.server.last_position = max(self.server.last_position, *positions)
        entries = self.ledger(wid)
        self.assertEqual(len(entries), 20)
        self.assertEqual(len({e["referenceId"] for e in entries}), 20)
        self.assertEqual(len({e["id"] for e in entries}), 20)


class HistoryAndTimeTravelTests(ReadSideCase):

    def test_events_of_a_wallet_with_pagination(self):
        a, b = self.new_wallet(initial=5), self.new_wallet()
        self.credit(a, 1)
        self.transfer(a, b, 2)
        body = self.read(f"/wallets/{a}/events").json
        self.assertEqual(list(body.keys()), ["walletId", "count", "events"])
        self.assertEqual(body["count"], 4)
        for event in body["events"]:
            self.assertEqual(list(event.keys()), EVENT_KEYS)
        self.assertEqual([e["version"] for e in body["events"]], [0, 1, 2, 3])
        self.assertEqual([e["type"] for e in body["events"]],
                         ["WalletCreated", "WalletCredited", "WalletCredited", "WalletTransferInitiated"])
        positions = [e["position"] for e in body["events"]]
        self.assertEqual(positions, sorted(positions))
        self.assertEqual(body["events"][1]["data"], {"amount": "5.00", "description": "Initial balance"})
        self.assertEqual(body["events"][3]["data"]["toWalletId"], b)
        page = self.read(f"/wallets/{a}/events?fromVersion=1&limit=2")
        self.assertEqual([e["version"] for e in page.json["events"]], [1, 2])
        self.assertEqual(page.headers.get("x-next-cursor"), "3")
        self.assertEqual(self.read(f"/wallets/{a}/events?fromVersion=9").json["events"], [])
        self.assert_error(self.read(f"/wallets/{uid()}/events", status=404), 404, "WALLET_NOT_FOUND")
        self.assert_error(self.get(f"/wallets/{a}/events?limit=0"), 400, "INVALID_QUERY")
        self.assert_error(self.get(f"/wallets/{a}/events?fromVersion=-1"), 400, "INVALID_QUERY")

    def test_time_travel_returns_earlier_balances(self):
        wid = self.new_wallet(initial=10)
        first = self.wallet(wid)
        time.sleep(0.01)
        self.credit(wid, Raw("2.5"))
        time.sleep(0.01)
        self.debit(wid, 1)
        now = self.wallet(wid)
        at1 = self.read(f"/wallets/{wid}?atVersion=1")
        self.assert_snapshot(at1, id=wid, balance="10", version=1)
        self.assertEqual(at1.json, first)
        at2 = self.read(f"/wallets/{wid}?atVersion=2").json
        self.assertEqual((D(at2["balance"]), at2["version"]), (D("12.5"), 2))
        self.assertEqual(self.read(f"/wallets/{wid}?atVersion=3").json, now)
        self.assertEqual(D(self.read(f"/wallets/{wid}?atVersion=0").json["balance"]), 0)
        self.assertEqual(self.read(f"/wallets/{wid}?at={first['updatedAt']}").json, first)
        self.assertEqual(self.read(f"/wallets/{wid}?at={now['updatedAt']}").json, now)
        self.assertEqual(self.read(f"/wallets/{wid}?at=2999-01-01").json, now)
        self.assert_error(self.read(f"/wallets/{wid}?atVersion=4", status=404), 404, "WALLET_NOT_FOUND")
        self.assert_error(self.read(f"/wallets/{wid}?at=2000-01-01", status=404), 404, "WALLET_NOT_FOUND")
        self.assert_error(self.read(f"/wallets/{uid()}?atVersion=0", status=404), 404, "WALLET_NOT_FOUND")
        for query in ["atVersion=-1", "atVersion=x", "at=tomorrow", "atVersion=1&at=2026-01-01"]:
            with self.subTest(query=query):
                self.assert_error(self.get(f"/wallets/{wid}?{query}"), 400, "INVALID_QUERY")
        # Without those parameters the authoritative state is served, as before.
        self.assertEqual(self.get(f"/wallets/{wid}?unrelated=1").json, now)


class MinPositionTests(ReadSideCase):

    def test_a_read_after_a_write_sees_it(self):
        for _ in range(20):
            wid = self.new_wallet()
            reply = self.credit(wid, 7)
            position = self.position_of(reply)
            ledger = self.get(f"/ledger/wallet/{wid}?minPosition={position}")
            self.assertEqual(ledger.status, 200, ledger)
            self.assertEqual(ledger.json["count"], 1)
            self.assertGreaterEqual(int(ledger.headers["x-wallex-position"]), position)
            listed = self.get(f"/wallets?after={wid[:-1]}&limit=1000&minPosition={position}")
            self.assertIn(wid, [w["id"] for w in listed.json])
            events = self.get(f"/wallets/{wid}/events?minPosition={position}")
            self.assertEqual(events.json["count"], 2)

    def test_a_position_never_reached_times_out_with_503(self):
        started = time.monotonic()
        reply = self.get("/ledger/transactions?minPosition=999999999999")
        elapsed = time.monotonic() - started
        self.assertEqual(reply.status, 503, reply)
        self.assertEqual(reply.json["code"], "PROJECTION_BEHIND")
        self.assertEqual(reply.headers.get("retry-after"), "1")
        self.assertGreaterEqual(elapsed, WAIT_MS / 1000 * 0.9)
        self.assertLess(elapsed, 5)

    def test_waiting_queries_do_not_block_other_requests(self):
        results = []

        def wait_for_nothing(_):
            results.append(self.server.request("GET", "/wallets?minPosition=999999999999")[0])

        thread = threading.Thread(target=lambda: sup.run_threads(5, wait_for_nothing))
        thread.start()
        time.sleep(0.05)
        started = time.monotonic()
        self.assertEqual(self.get("/health").status, 200)
        wid = self.new_wallet(initial=1)
        self.assertEqual(self.read(f"/ledger/wallet/{wid}").json["count"], 1)
        self.assertLess(time.monotonic() - started, WAIT_MS / 1000)
        thread.join()
        self.assertEqual(results, [503] * 5)


class ProjectionHealthTests(ReadSideCase):

    def test_health_reports_every_projector(self):
        self.new_wallet(initial=1)
        self.read("/wallets")
        health = self.get("/health").json
        self.assertEqual(health["status"], "ok")
        self.assertEqual(set(health["projections"]), {"readModel", "ledger", "walletEvents"})
        for projector in health["projections"].values():
            self.assertEqual(projector["status"], "ok")
            self.assertIsInstance(projector["position"], int)
            self.assertGreaterEqual(projector["positionsBehind"], 0)
            self.assertGreaterEqual(projector["secondsBehind"], 0)


# ====================================================================== crash, rebuild, verify

class FreshServerCase(sup.ServerTestCase):
    """A fresh server per test."""

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.server = WallexServer(sup.BIN, extra_args=("--min-position-wait-ms", "5000"))
        self.server.last_position = 0

    def tearDown(self):
        try:
            if self.server.is_running():
                self.server.stop()
        finally:
            self.server.cleanup()

    def populate(self, wallets=8, operations=150, seed=1):
        rnd = random.Random(seed)
        ids = [self.new_wallet(initial=rnd.choice([0, 25, Raw("10.05")])) for _ in range(wallets)]
        for _ in range(operations):
            a, b = rnd.sample(ids, 2)
            amount = Raw(f"{rnd.randint(1, 9)}.{rnd.randint(0, 99):02d}")
            kind = rnd.choice(["credit", "debit", "transfer"])
            if kind == "credit":
                self.credit(a, amount)
            elif kind == "debit":
                self.debit(a, amount, expect=None)
            else:
                self.transfer(a, b, amount, expect=None)
        return ids

    def read_db(self):
        return os.path.join(self.server.data_dir, "read.db")

    def count_money_events(self):
        return int(self.server.query(
            "SELECT count(*) FROM events WHERE type != 'WalletCreated'")[0][0])

    def assert_ledger_complete(self):
        entries, distinct = (int(v) for v in self.server.query(
            "SELECT count(*), count(DISTINCT position) FROM ledger_entries", "read")[0])
        self.assertEqual(entries, distinct)
        self.assertEqual(entries, self.count_money_events())


class CrashTests(FreshServerCase):

    def test_kill9_while_projections_are_behind_then_catch_up_exactly_once(self):
        ids = self.populate(wallets=5, operations=40)
        self.read_side_caught_up()
        # Hold the read side's write lock: the projector cannot commit, so it falls behind.
        blocker = ProjectionBlocker(self.server)
        try:
            for i in range(60):
                self.credit(ids[i % len(ids)], Raw("1.11"))
            self.transfer(ids[0], ids[1], 1)
            # On PostgreSQL the lag comes from the shared checkpoints and the log head, polled
            # every 100 ms: allow it a moment to show.
            deadline = time.monotonic() + 5
            while True:
                health = self.get("/health").json
                behind = health["projections"]["ledger"]["positionsBehind"]
                if behind > 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertGreater(behind, 0, health)
            self.server.kill9()
        finally:
            blocker.close()
        self.server.restart()
        self.read_side_caught_up()
        self.assert_ledger_complete()
        for wid in ids:
            entries = self.get(f"/ledger/wallet/{wid}?limit=1000").json["transactions"]
            net = sum(D(e["amount"]) * (1 if e["transactionType"] in ("CREDIT", "TRANSFER_IN") else -1)
                      for e in entries)
            self.assertEqual(net, D(self.wallet(wid)["balance"]))
        self.server.stop()
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 0, out)

    def test_kill9_during_projection_under_load(self):
        ids = self.populate(wallets=6, operations=20)

        def load(i):
            for j in range(30):
                try:
                    self.server.request("POST", f"/wallets/{ids[(i + j) % len(ids)]}/credit",
                                        {"amount": "0.01"})
                except OSError:
                    return  # the server was killed

        threads = [threading.Thread(target=load, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.15)
        self.server.kill9()
        for t in threads:
            t.join()
        self.server.restart()
        self.read_side_caught_up()
        self.assert_ledger_complete()
        self.server.stop()
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 0, out)

    def read_side_caught_up(self):
        head = self.get("/health").json["store"]["lastPosition"]
        reply = self.get(f"/ledger/transactions?limit=1&minPosition={head}")
        self.assertEqual(reply.status, 200, reply)
        for path in (f"/wallets?limit=1&minPosition={head}", f"/wallets/x/events?minPosition={head}"):
            self.assertIn(self.get(path).status, (200, 404))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            projections = self.get("/health").json["projections"]
            if all(p["position"] >= head for p in projections.values()):
                return
            time.sleep(0.05)
        self.fail(f"projections did not reach {head}")


class RebuildAndVerifyTests(FreshServerCase):

    def test_rebuild_produces_the_incremental_projections(self):
        self.populate()
        self.server.stop()
        incremental = dump_read_db(self.server)
        self.assertTrue(incremental["ledger_entries"])
        code, out, err = tool("rebuild", *self.server.tool_args())
        self.assertEqual(code, 0, err)
        self.assertIn("events/s", err)
        self.assertEqual(dump_read_db(self.server), incremental)
        # The server starts on the rebuilt read side and keeps projecting.
        self.server.restart()
        wid = self.new_wallet(initial=3)
        self.assertEqual(self.get(f"/ledger/wallet/{wid}?minPosition={self.server.last_position}")
                         .json["count"], 1)

    def test_rebuild_after_losing_read_db(self):
        ids = self.populate(wallets=3, operations=20)
        expected = {wid: self.wallet(wid) for wid in ids}
        self.server.stop()
        incremental = dump_read_db(self.server)
        if self.server.store_url:
            # The PostgreSQL equivalent of losing read.db: every read-side row is gone.
            self.server.query("TRUNCATE read_wallets, ledger_wallets, ledger_entries,"
                              " wallet_events, event_wallets, projection_checkpoints")
        else:
            for suffix in ("", "-wal", "-shm"):
                path = self.read_db() + suffix
                if os.path.exists(path):
                    os.remove(path)
        code, _, err = tool("rebuild", *self.server.tool_args())
        self.assertEqual(code, 0, err)
        self.assertEqual(dump_read_db(self.server), incremental)
        self.server.restart()
        listed = {w["id"]: w for w in self.get("/wallets?limit=1000").json}
        self.assertEqual(listed, expected)

    def missing_store_args(self):
        if self.server.store_url:
            base, sep, query = self.server.store_url.partition("?")
            return ["--store", base.rpartition("/")[0] + "/wallex_no_such_database" + sep + query]
        return ["--data-dir", os.path.join(self.server.data_dir, "nope")]

    def test_rebuild_of_a_missing_store_fails(self):
        code, _, err = tool("rebuild", *self.missing_store_args())
        self.assertNotEqual(code, 0)
        self.assertIn("does not exist" if self.server.store_url else "no Wallex store", err)

    def test_verify_passes_on_a_healthy_store_live_and_stopped(self):
        self.populate()
        head = self.get("/health").json["store"]["lastPosition"]
        self.get(f"/ledger/transactions?minPosition={head}")
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 0, out)
        self.assertIn("verify: OK", out)
        self.server.stop()
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 0, out)

    def test_verify_fails_on_a_corrupted_ledger_row(self):
        self.populate(operations=40)
        self.server.stop()
        self.server.query("UPDATE ledger_entries SET balance_after_minor = balance_after_minor + 1"
                          " WHERE position = (SELECT MIN(position) FROM ledger_entries)", "read")
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 1, out)
        self.assertIn("DIFFERENCE ledger: entry", out)
        self.assertIn("balanceAfter", out)
        # A rebuild repairs it.
        self.assertEqual(tool("rebuild", *self.server.tool_args())[0], 0)
        self.assertEqual(tool("verify", *self.server.tool_args())[0], 0)

    def test_verify_fails_on_a_corrupted_write_model_row(self):
        ids = self.populate(operations=30)
        self.server.stop()
        self.server.query(f"UPDATE wallets SET version = version + 1 WHERE id = '{ids[0]}'")
        code, out, _ = tool("verify", *self.server.tool_args())
        self.assertEqual(code, 1, out)
        self.assertIn(f"DIFFERENCE write model: wallet {ids[0]}: version", out)

    def test_verify_of_a_missing_store_fails(self):
        code, _, err = tool("verify", *self.missing_store_args())
        self.assertNotEqual(code, 0)


if __name__ == "__main__":
    unittest.main()
