"""End-to-end HTTP tests for Wallex: a real `wallex serve` process per test class.

Run: WALLEX_BIN=/path/to/wallex python3 -m unittest -v test_e2e   (from tests/e2e)
"""

import http.client
import signal
import socket
import subprocess
import threading
import time
import unittest
from decimal import Decimal

import e2e_support as sup
from e2e_support import D, Raw, uid, new_key
from wallex_server import WallexServer, build_request, free_port, read_response


# ====================================================================== health, headers

class HealthAndHeadersTests(sup.ServerTestCase):

    def test_health(self):
        r = self.get("/health")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["status"], "ok")

    def test_module_health_endpoints(self):
        for path, module in [("/ledger/health", "ledger"), ("/users/health", "user"),
                             ("/integration/health", "integration")]:
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json, {"status": "ok", "module": module})

    def test_root_says_hello_world(self):
        r = self.get("/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.raw, b"Hello World!")
        self.assertEqual(sup.media_type(r.headers), "text/html")

    def test_valid_correlation_id_is_echoed_on_every_kind_of_response(self):
        wid = self.new_wallet()
        cases = [
            ("GET", "/health", None),
            ("GET", f"/wallets/{wid}", None),
            ("POST", f"/wallets/{wid}/credit", {"amount": 1}),            # 201
            ("POST", f"/wallets/{wid}/debit", {"amount": 1000}),          # 400
            ("GET", f"/wallets/{uid('missing')}", None),                  # 404
            ("GET", "/no/such/route", None),                              # 404
            ("DELETE", f"/wallets/{wid}", None),                          # 405
            ("GET", "/", None),
        ]
        for method, path, body in cases:
            cid = f"corr-{uid()}"
            with self.subTest(method=method, path=path):
                r = self.call(method, path, body, headers={"X-Correlation-Id": cid})
                self.assertEqual(r.headers["x-correlation-id"], cid)

    def test_correlation_id_of_128_printable_chars_is_echoed(self):
        cid = ("!#$%&'*+-.^_`|~09AZaz" * 10)[:128]
        r = self.get("/health", headers={"X-Correlation-Id": cid})
        self.assertEqual(r.headers["x-correlation-id"], cid)

    def test_missing_correlation_id_gets_a_fresh_uuid(self):
        first = self.get("/health").headers["x-correlation-id"]
        second = self.get("/health").headers["x-correlation-id"]
        self.assertRegex(first, sup.UUID_RE)
        self.assertRegex(second, sup.UUID_RE)
        self.assertNotEqual(first, second)

    def test_invalid_correlation_id_is_replaced_by_a_uuid(self):
        for bad in ["x" * 129, "", b"caf\xe9"]:
            with self.subTest(bad=bad):
                r = self.get("/health", headers={"X-Correlation-Id": bad})
                self.assertEqual(r.status, 200)
                self.assertRegex(r.headers["x-correlation-id"], sup.UUID_RE)


# ====================================================================== create

class CreateWalletTests(sup.ServerTestCase):

    def test_create_without_initial_balance(self):
        wid, owner = uid(), uid("owner")
        r = self.create_wallet(wid, owner)
        self.assert_snapshot(r, id=wid, owner=owner, balance="0", version=0)
        self.assertIn('"balance":0,', r.text)
        self.assertIsNone(r.replayed)

    def test_create_with_null_initial_balance(self):
        r = self.create_wallet(initial=None, **{"initialBalance": None})
        self.assert_snapshot(r, balance="0", version=0)

    def test_create_with_zero_initial_balance(self):
        r = self.create_wallet(initial=0)
        self.assert_snapshot(r, balance="0", version=0)

    def test_create_with_initial_balance(self):
        r = self.create_wallet(initial=Raw("100.5"))
        self.assert_snapshot(r, balance="100.5", version=1)
        self.assertIn('"balance":100.5,', r.text)

    def test_create_with_integer_initial_balance_is_written_minimally(self):
        r = self.create_wallet(initial=Raw("100.00"))
        self.assertIn('"balance":100,', r.text)
        self.assert_snapshot(r, version=1)

    def test_create_with_decimal_string_initial_balance(self):
        r = self.create_wallet(initial="12.50")
        self.assertIn('"balance":12.5,', r.text)
        self.assert_snapshot(r, version=1)

    def test_create_with_maximum_initial_balance(self):
        r = self.create_wallet(initial=1000000000)
        self.assert_snapshot(r, balance="1000000000", version=1)
        self.assertIn('"balance":1000000000,', r.text)

    def test_get_returns_the_created_snapshot(self):
        r = self.create_wallet(initial=Raw("42.42"))
        snap = self.wallet(r.json["id"])
        self.assertEqual(snap, r.json)

    def test_creating_an_existing_wallet_is_a_conflict_and_changes_nothing(self):
        wid = uid()
        created = self.create_wallet(wid, initial=10).json
        again = self.create_wallet(wid, initial=500, expect=409)
        self.assert_error(again, 409, "WALLET_ALREADY_EXISTS")
        other_owner = self.create_wallet(wid, owner_id=uid("other"), expect=409)
        self.assert_error(other_owner, 409, "WALLET_ALREADY_EXISTS")
        self.assertEqual(self.wallet(wid), created)

    def test_get_unknown_wallet(self):
        wid = uid("missing")
        r = self.get(f"/wallets/{wid}")
        self.assert_error(r, 404, "WALLET_NOT_FOUND", f"Wallet {wid} not found")

    def test_ids_may_use_every_allowed_character(self):
        wid = "AZaz09._:@-" + uid()
        owner = "user.name@example.com:" + uid()
        r = self.create_wallet(wid, owner)
        self.assert_snapshot(r, id=wid, owner=owner)
        self.assertEqual(self.wallet(wid)["ownerId"], owner)
        self.credit(wid, 5)
        self.assert_wallet(wid, "5", 1)

    def test_ids_of_128_characters_are_accepted(self):
        wid = ("w" + uid()).ljust(128, "x")
        owner = ("o" + uid()).ljust(128, "y")
        self.assertEqual(len(wid), 128)
        self.create_wallet(wid, owner)
        self.assertEqual(self.wallet(wid)["ownerId"], owner)

    def test_percent_encoded_path_segment_is_decoded(self):
        suffix = uid()
        wid = f"pct-{suffix}"
        self.create_wallet(wid)
        r = self.get(f"/wallets/pct%2D{suffix}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["id"], wid)

    def test_same_owner_may_hold_several_wallets(self):
        owner = uid("owner")
        a = self.create_wallet(owner_id=owner).json
        b = self.create_wallet(owner_id=owner).json
        self.assertNotEqual(a["id"], b["id"])
        self.assertEqual(a["ownerId"], b["ownerId"])


# ====================================================================== credit / debit

class CreditDebitTests(sup.ServerTestCase):

    def test_point_one_plus_point_two_is_exactly_point_three(self):
        wid = self.new_wallet()
        self.credit(wid, Raw("0.1"))
        r = self.credit(wid, Raw("0.2"))
        self.assertIn('"balance":0.3,', r.text)
        self.assert_snapshot(r, balance="0.3", version=2)
        g = self.get(f"/wallets/{wid}")
        self.assertIn('"balance":0.3,', g.text)

    def test_credit_with_decimal_string_amount(self):
        wid = self.new_wallet()
        r = self.credit(wid, "12.50")
        self.assert_snapshot(r, balance="12.5", version=1)
        self.assertIn('"balance":12.5,', r.text)

    def test_trailing_zero_decimals_are_accepted(self):
        wid = self.new_wallet()
        self.credit(wid, Raw("10.500"))
        self.credit(wid, "10.500")
        r = self.credit(wid, Raw("1.000000"))
        self.assertIn('"balance":22,', r.text)
        self.assert_snapshot(r, balance="22", version=3)

    def test_integer_balance_is_written_without_decimals(self):
        wid = self.new_wallet()
        self.credit(wid, Raw("0.5"))
        r = self.credit(wid, Raw("99.5"))
        self.assertIn('"balance":100,', r.text)

    def test_two_decimal_balance_text(self):
        wid = self.new_wallet()
        r = self.credit(wid, Raw("0.05"))
        self.assertIn('"balance":0.05,', r.text)
        r = self.credit(wid, Raw("130.45"))
        self.assertIn('"balance":130.5,', r.text)

    def test_debit_reduces_balance(self):
        wid = self.new_wallet(initial=100)
        r = self.debit(wid, Raw("30.25"))
        self.assert_snapshot(r, balance="69.75", version=2)
        self.assert_wallet(wid, "69.75", 2)

    def test_debit_of_the_entire_balance_leaves_zero(self):
        wid = self.new_wallet(initial=Raw("55.55"))
        r = self.debit(wid, "55.55")
        self.assertIn('"balance":0,', r.text)
        self.assert_snapshot(r, balance="0", version=2)

    def test_debit_above_balance_is_insufficient_funds(self):
        wid = self.new_wallet(initial=100)
        r = self.debit(wid, Raw("100.01"), expect=400)
        self.assert_error(r, 400, "INSUFFICIENT_FUNDS")
        self.assert_wallet(wid, "100", 1)

    def test_debit_of_empty_wallet_is_insufficient_funds(self):
        wid = self.new_wallet()
        r = self.debit(wid, Raw("0.01"), expect=400)
        self.assert_error(r, 400, "INSUFFICIENT_FUNDS")
        self.assert_wallet(wid, "0", 0)

    def test_credit_and_debit_of_unknown_wallet(self):
        wid = uid("missing")
        for op in ("credit", "debit"):
            with self.subTest(op=op):
                r = self.post(f"/wallets/{wid}/{op}", {"amount": 1})
                self.assert_error(r, 404, "WALLET_NOT_FOUND", f"Wallet {wid} was not found")
        self.assert_error(self.get(f"/wallets/{wid}"), 404, "WALLET_NOT_FOUND")

    def test_description_is_optional_and_accepted_up_to_500_bytes(self):
        wid = self.new_wallet()
        self.credit(wid, 1, description="Salary")
        self.credit(wid, 1, description="")
        self.credit(wid, 1, description="d" * 500)
        self.debit(wid, 1, description="é" * 250)  # 500 bytes of UTF-8
        self.assert_wallet(wid, "2", 4)

    def test_description_longer_than_500_bytes_is_rejected(self):
        wid = self.new_wallet(initial=10)
        for desc in ["d" * 501, "é" * 251, "€" * 200]:  # 501, 502, 600 bytes
            with self.subTest(length=len(desc.encode())):
                r = self.credit(wid, 1, description=desc, expect=400)
                self.assert_error(r, 400, "INVALID_FIELD")
                r = self.debit(wid, 1, description=desc, expect=400)
                self.assert_error(r, 400, "INVALID_FIELD")
        self.assert_wallet(wid, "10", 1)

    def test_maximum_single_amount_is_accepted(self):
        wid = self.new_wallet()
        r = self.credit(wid, 1000000000)
        self.assertIn('"balance":1000000000,', r.text)
        r = self.debit(wid, "1000000000.00")
        self.assertIn('"balance":0,', r.text)

    def test_balance_limit_of_ten_billion(self):
        wid = self.new_wallet(initial=1000000000)
        for _ in range(9):
            r = self.credit(wid, 1000000000)
        self.assertIn('"balance":10000000000,', r.text)
        self.assert_snapshot(r, balance="10000000000", version=10)
        r = self.credit(wid, Raw("0.01"), expect=400)
        self.assert_error(r, 400, "BALANCE_LIMIT_EXCEEDED")
        self.assert_wallet(wid, "10000000000", 10)
        # Still fully usable: a debit then a credit back up to the limit works.
        self.debit(wid, Raw("0.01"))
        r = self.credit(wid, Raw("0.01"))
        self.assertIn('"balance":10000000000,', r.text)

    def test_versions_count_every_operation(self):
        wid = self.new_wallet(initial=10)
        expected = Decimal(10)
        for i in range(1, 11):
            if i % 3 == 0:
                r = self.debit(wid, "1.10")
                expected -= Decimal("1.10")
            else:
                r = self.credit(wid, "2.35")
                expected += Decimal("2.35")
            self.assert_snapshot(r, balance=expected, version=1 + i)

    def test_read_your_writes(self):
        wid = self.new_wallet()
        for i in range(1, 21):
            self.credit(wid, Raw("0.01"))
            snap = self.assert_wallet(wid, Decimal("0.01") * i, i)
            self.assertIn(f'"balance":{sup.minimal_text(Decimal("0.01") * i)},',
                          self.get(f"/wallets/{wid}").text)
        self.assertEqual(D(snap["balance"]), Decimal("0.2"))

    def test_timestamps_move_forward(self):
        created = self.create_wallet().json
        time.sleep(0.01)
        after = self.credit(created["id"], 1).json
        self.assertEqual(after["createdAt"], created["createdAt"])
        self.assertGreaterEqual(after["updatedAt"], created["updatedAt"])
        self.assertEqual(self.wallet(created["id"])["updatedAt"], after["updatedAt"])

    def test_positions_strictly_increase_across_commands(self):
        a = self.create_wallet(initial=100)
        b = self.create_wallet()
        replies = [a, b,
                   self.credit(b.json["id"], 1),
                   self.debit(a.json["id"], 1),
                   self.transfer(a.json["id"], b.json["id"], 1)]
        positions = [self.position_of(r) for r in replies]
        self.assertEqual(positions, sorted(set(positions)), positions)
        self.assertGreater(positions[0], 0)


# ====================================================================== transfer

class TransferTests(sup.ServerTestCase):

    def test_transfer_moves_money_and_returns_both_snapshots(self):
        src = self.new_wallet(initial=100)
        dst = self.new_wallet()
        r = self.transfer(src, dst, Raw("30.25"), description="rent")
        self.check_snapshot(r.json["fromWallet"], id=src, balance="69.75", version=2)
        self.check_snapshot(r.json["toWallet"], id=dst, balance="30.25", version=1)
        self.assertIn('"balance":69.75,', r.text)
        self.assertIn('"balance":30.25,', r.text)
        self.assertEqual(self.wallet(src), r.json["fromWallet"])
        self.assertEqual(self.wallet(dst), r.json["toWallet"])

    def test_transfer_ids_are_unique(self):
        src = self.new_wallet(initial=10)
        dst = self.new_wallet()
        ids = {self.transfer(src, dst, 1).json["transferId"] for _ in range(5)}
        self.assertEqual(len(ids), 5)
        self.assert_wallet(src, "5", 6)
        self.assert_wallet(dst, "5", 5)

    def test_transfer_of_the_entire_balance(self):
        src = self.new_wallet(initial="7.77")
        dst = self.new_wallet(initial="0.23")
        r = self.transfer(src, dst, "7.77")
        self.check_snapshot(r.json["fromWallet"], balance="0", version=2)
        self.check_snapshot(r.json["toWallet"], balance="8", version=2)
        self.assertIn('"balance":0,', r.text)
        self.assertIn('"balance":8,', r.text)

    def test_transfer_above_balance_is_insufficient_funds(self):
        src = self.new_wallet(initial=10)
        dst = self.new_wallet(initial=5)
        r = self.transfer(src, dst, Raw("10.01"), expect=400)
        self.assert_error(r, 400, "INSUFFICIENT_FUNDS")
        self.assert_wallet(src, "10", 1)
        self.assert_wallet(dst, "5", 1)

    def test_transfer_to_the_same_wallet_is_rejected(self):
        wid = self.new_wallet(initial=10)
        r = self.transfer(wid, wid, 1, expect=400)
        self.assert_error(r, 400, "SAME_WALLET_TRANSFER")
        self.assert_wallet(wid, "10", 1)

    def test_transfer_to_unknown_wallet_leaves_source_unchanged(self):
        src = self.new_wallet(initial=10)
        dst = uid("missing")
        r = self.transfer(src, dst, 1, expect=404)
        self.assert_error(r, 404, "WALLET_NOT_FOUND", f"Wallet {dst} was not found")
        self.assert_wallet(src, "10", 1)
        self.assert_error(self.get(f"/wallets/{dst}"), 404, "WALLET_NOT_FOUND")

    def test_transfer_from_unknown_wallet(self):
        src = uid("missing")
        dst = self.new_wallet(initial=1)
        r = self.transfer(src, dst, 1, expect=404)
        self.assert_error(r, 404, "WALLET_NOT_FOUND", f"Wallet {src} was not found")
        self.assert_wallet(dst, "1", 1)

    def test_transfer_into_a_full_wallet_is_rejected_atomically(self):
        full = self.new_wallet(initial=1000000000)
        for _ in range(9):
            self.credit(full, 1000000000)
        src = self.new_wallet(initial=5)
        r = self.transfer(src, full, 1, expect=400)
        self.assert_error(r, 400, "BALANCE_LIMIT_EXCEEDED")
        self.assert_wallet(src, "5", 1)
        self.assert_wallet(full, "10000000000", 10)

    def test_transfer_with_decimal_string_amount_and_chain(self):
        a = self.new_wallet(initial="0.30")
        b = self.new_wallet()
        c = self.new_wallet()
        self.transfer(a, b, "0.1")
        self.transfer(b, c, "0.1")
        self.transfer(a, c, "0.2")
        self.assert_wallet(a, "0", 3)
        self.assert_wallet(b, "0", 2)
        r = self.get(f"/wallets/{c}")
        self.assertIn('"balance":0.3,', r.text)
        self.assert_snapshot(r, balance="0.3", version=2)


# ====================================================================== validation

class ValidationTests(sup.ServerTestCase):
    """Bad input of every kind: 400/413 with the right code, no effect, and the server stays up."""

    INVALID_AMOUNTS = ["0", "0.00", "-0", "-5", "-0.01", "10.005", "0.001", "1.999",
                       '"0"', '"-1"', '"10.005"', '"abc"', '"NaN"', '"Infinity"', '"-Infinity"',
                       '""', "true", "false", "{}", "[]", "[1]", '{"value":1}']
    TOO_LARGE_AMOUNTS = ["1000000000.01", "1000000001", '"1000000000.01"', "1e10",
                         "99999999999999999999999"]

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.victim = f"victim-{uid()}"
        cls.peer = f"peer-{uid()}"
        for wid in (cls.victim, cls.peer):
            status, _, raw = cls.server.request(
                "POST", "/wallets", {"walletId": wid, "ownerId": "validation", "initialBalance": 1000})
            assert status == 201, raw

    def money_bodies(self, amount_text):
        """(path, raw body) for credit, debit and transfer of the victim wallet."""
        v, p = self.victim, self.peer
        return [(f"/wallets/{v}/credit", f'{{"amount":{amount_text}}}'),
                (f"/wallets/{v}/debit", f'{{"amount":{amount_text}}}'),
                (f"/wallets/{v}/transfer", f'{{"toWalletId":"{p}","amount":{amount_text}}}')]

    def test_invalid_amounts(self):
        for amount in self.INVALID_AMOUNTS:
            for path, body in self.money_bodies(amount):
                with self.subTest(path=path, amount=amount):
                    self.assert_error(self.post(path, body), 400, "INVALID_AMOUNT")

    def test_amounts_above_one_billion(self):
        for amount in self.TOO_LARGE_AMOUNTS:
            for path, body in self.money_bodies(amount):
                with self.subTest(path=path, amount=amount):
                    self.assert_error(self.post(path, body), 400, "AMOUNT_TOO_LARGE")

    def test_amount_1e400(self):
        for path, body in self.money_bodies("1e400"):
            with self.subTest(path=path):
                self.assert_error(self.post(path, body), 400, {"AMOUNT_TOO_LARGE", "INVALID_JSON"})

    def test_nan_and_infinity_literals_are_malformed_json(self):
        for literal in ["NaN", "Infinity", "-Infinity"]:
            for path, body in self.money_bodies(literal):
                with self.subTest(path=path, literal=literal):
                    self.assert_error(self.post(path, body), 400, "INVALID_JSON")

    def test_missing_amount(self):
        v = self.victim
        for path, body in [(f"/wallets/{v}/credit", {}),
                           (f"/wallets/{v}/debit", {"description": "x"}),
                           (f"/wallets/{v}/transfer", {"toWalletId": self.peer})]:
            with self.subTest(path=path):
                self.assert_error(self.post(path, body), 400, "MISSING_FIELD")

    def test_invalid_initial_balance(self):
        cases = [("-1", "INVALID_AMOUNT"), ("-0.01", "INVALID_AMOUNT"), ('"abc"', "INVALID_AMOUNT"),
                 ("10.005", "INVALID_AMOUNT"), ("true", "INVALID_AMOUNT"), ("[]", "INVALID_AMOUNT"),
                 ('"NaN"', "INVALID_AMOUNT"), ("1000000000.01", "AMOUNT_TOO_LARGE")]
        for text, code in cases:
            with self.subTest(initialBalance=text):
                wid = uid()
                r = self.create_wallet(wid, initialBalance=Raw(text), expect=400)
                self.assert_error(r, 400, code)
                self.assert_error(self.get(f"/wallets/{wid}"), 404, "WALLET_NOT_FOUND")

    def test_missing_wallet_or_owner_id(self):
        for field in ("walletId", "ownerId"):
            for value in ("absent", None, ""):
                with self.subTest(field=field, value=value):
                    body = {"walletId": uid(), "ownerId": uid("owner")}
                    if value == "absent":
                        del body[field]
                    else:
                        body[field] = value
                    self.assert_error(self.post("/wallets", body), 400, "MISSING_FIELD")

    def test_wrong_typed_fields(self):
        v, p = self.victim, self.peer
        cases = [("/wallets", {"walletId": 123, "ownerId": "o"}),
                 ("/wallets", {"walletId": True, "ownerId": "o"}),
                 ("/wallets", {"walletId": ["a"], "ownerId": "o"}),
                 ("/wallets", {"walletId": uid(), "ownerId": 5}),
                 ("/wallets", {"walletId": uid(), "ownerId": {"id": "o"}}),
                 (f"/wallets/{v}/credit", {"amount": 1, "description": 5}),
                 (f"/wallets/{v}/debit", {"amount": 1, "description": True}),
                 (f"/wallets/{v}/debit", {"amount": 1, "description": ["x"]}),
                 (f"/wallets/{v}/transfer", {"toWalletId": 5, "amount": 1}),
                 (f"/wallets/{v}/transfer", {"toWalletId": [p], "amount": 1}),
                 (f"/wallets/{v}/transfer", {"toWalletId": p, "amount": 1, "description": 1})]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                self.assert_error(self.post(path, body), 400, "INVALID_FIELD")

    def test_missing_destination(self):
        r = self.post(f"/wallets/{self.victim}/transfer", {"amount": 1})
        self.assert_error(r, 400, "MISSING_FIELD")

    BAD_IDS = ["a b", "a/b", "ä", "x" * 129, "a%20b", "tab\there", "semi;colon", 'quo"te',
               "back\\slash", "a+b", "a#b", "a?b", "a,b"]

    def test_invalid_wallet_ids_in_body(self):
        for bad in self.BAD_IDS:
            with self.subTest(walletId=bad):
                r = self.post("/wallets", {"walletId": bad, "ownerId": "o"})
                self.assert_error(r, 400, "INVALID_WALLET_ID")
            with self.subTest(toWalletId=bad):
                r = self.post(f"/wallets/{self.victim}/transfer", {"toWalletId": bad, "amount": 1})
                self.assert_error(r, 400, "INVALID_WALLET_ID")

    def test_invalid_owner_ids(self):
        for bad in self.BAD_IDS:
            with self.subTest(ownerId=bad):
                wid = uid()
                r = self.post("/wallets", {"walletId": wid, "ownerId": bad})
                self.assert_error(r, 400, "INVALID_OWNER_ID")
                self.assert_error(self.get(f"/wallets/{wid}"), 404, "WALLET_NOT_FOUND")

    def test_invalid_wallet_ids_in_path(self):
        segments = ["a%20b", "a%2Fb", "%E4", "%C3%A4", "x" * 129, "a%3Bb", "a%22b"]
        for seg in segments:
            for op in ("credit", "debit"):
                with self.subTest(segment=seg, op=op):
                    r = self.post(f"/wallets/{seg}/{op}", {"amount": 1})
                    self.assert_error(r, 400, "INVALID_WALLET_ID")
            with self.subTest(segment=seg, op="transfer"):
                r = self.post(f"/wallets/{seg}/transfer", {"toWalletId": self.peer, "amount": 1})
                self.assert_error(r, 400, "INVALID_WALLET_ID")
            with self.subTest(segment=seg, op="get"):
                self.assert_error(self.get(f"/wallets/{seg}"), 400, "INVALID_WALLET_ID")

    def test_body_that_is_not_json(self):
        wid = self.new_wallet()
        for body in ["not json", "{", '{"amount":}', '{"amount":1', "", "{'amount':1}",
                     '{"amount":1,}', '{amount:1}', '{"amount":1}}', '{"amount":1} x',
                     '{"amount":1}{"amount":2}', '{"amount":1} []']:
            with self.subTest(body=body):
                self.assert_error(self.post(f"/wallets/{wid}/credit", body), 400, "INVALID_JSON")
        self.assert_wallet(wid, "0", 0)
        r = self.post("/wallets", f'{{"walletId":"{wid}x","ownerId":"o"}} trailing')
        self.assert_error(r, 400, "INVALID_JSON")
        self.assert_error(self.post("/wallets", "{"), 400, "INVALID_JSON")

    def test_invalid_utf8_in_body_is_rejected(self):
        r = self.post(f"/wallets/{self.victim}/credit", b'{"amount":1,"description":"\xff\xfe"}')
        self.assertEqual(r.status, 400, r)
        self.assert_error(r, 400, r.json["code"])

    def test_body_that_is_json_but_not_an_object(self):
        for body in ["[]", "[1]", '"amount"', "42", "null", "true", '[{"amount":1}]']:
            for path in (f"/wallets/{self.victim}/credit", "/wallets"):
                with self.subTest(body=body, path=path):
                    self.assert_error(self.post(path, body), 400, "INVALID_BODY")

    def test_duplicate_keys(self):
        v = self.victim
        self.assert_error(self.post(f"/wallets/{v}/credit", '{"amount":1,"amount":2}'),
                          400, "INVALID_BODY")
        self.assert_error(self.post(f"/wallets/{v}/debit", '{"amount":1,"amount":1}'),
                          400, "INVALID_BODY")
        wid = uid()
        body = f'{{"walletId":"{wid}","ownerId":"o","walletId":"{uid()}"}}'
        self.assert_error(self.post("/wallets", body), 400, "INVALID_BODY")
        self.assert_error(self.get(f"/wallets/{wid}"), 404, "WALLET_NOT_FOUND")

    def test_nesting_deeper_than_16(self):
        for depth in (17, 20, 64):
            body = '{"amount":1,"extra":' + "[" * (depth - 1) + "]" * (depth - 1) + "}"
            with self.subTest(depth=depth):
                r = self.post(f"/wallets/{self.victim}/credit", body)
                self.assert_error(r, 400, "INVALID_BODY")

    def test_absurdly_deep_nesting_does_not_crash(self):
        n = 50000
        body = '{"amount":1,"extra":' + "[" * n + "]" * n + "}"
        self.assertLessEqual(len(body), 102400)
        r = self.post(f"/wallets/{self.victim}/credit", body)
        self.assert_error(r, 400, "INVALID_BODY")
        n = 16000
        body = '{"amount":1,"extra":' + '{"a":' * n + "1" + "}" * n + "}"
        self.assertLessEqual(len(body), 102400)
        r = self.post(f"/wallets/{self.victim}/credit", body)
        self.assert_error(r, 400, "INVALID_BODY")
        self.assertEqual(self.get("/health").status, 200)

    def test_body_of_exactly_102400_bytes_is_accepted(self):
        wid = self.new_wallet()
        core = '{"amount":1}'
        body = core[:-1] + " " * (102400 - len(core)) + "}"
        self.assertEqual(len(body), 102400)
        r = self.post(f"/wallets/{wid}/credit", body)
        self.assertEqual(r.status, 201, r)
        self.assert_wallet(wid, "1", 1)

    def send_raw_body(self, path, body, extra_headers=""):
        """Raw-socket POST that keeps reading even if the server stops reading the body."""
        sock = self.server.raw_socket()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n{extra_headers}\r\n").encode()

        def send():
            try:
                sock.sendall(head + body)
            except OSError:
                pass  # the server may stop reading after the 413

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            status, headers, raw = read_response(sock.makefile("rb"))
        finally:
            sender.join(timeout=10)
            sock.close()
        return sup.Reply(status, headers, raw)

    def test_body_larger_than_102400_bytes_is_413(self):
        wid = self.new_wallet()
        core = b'{"amount":1}'
        for size in (102401, 200000, 5 * 1024 * 1024):
            with self.subTest(size=size):
                body = core[:-1] + b" " * (size - len(core)) + b"}"
                cid = f"corr-{uid()}"
                r = self.send_raw_body(f"/wallets/{wid}/credit", body,
                                       f"X-Correlation-Id: {cid}\r\n")
                self.assert_error(r, 413, "PAYLOAD_TOO_LARGE")
                self.assertEqual(r.headers.get("x-correlation-id"), cid, r.headers)
        self.assert_wallet(wid, "0", 0)
        self.assertEqual(self.get("/health").status, 200)

    def test_invalid_idempotency_keys(self):
        v = self.victim
        for bad in ["k" * 256, b"caf\xe9-key"]:
            with self.subTest(key=bad[:20]):
                r = self.post(f"/wallets/{v}/credit", {"amount": 1}, key=bad)
                self.assert_error(r, 400, "INVALID_IDEMPOTENCY_KEY")
                r = self.post("/wallets", {"walletId": uid(), "ownerId": "o"}, key=bad)
                self.assert_error(r, 400, "INVALID_IDEMPOTENCY_KEY")

    def test_idempotency_key_of_255_characters_is_accepted(self):
        wid = self.new_wallet()
        key = ("k" + uid()).ljust(255, "~")
        first = self.credit(wid, 1, key=key)
        again = self.credit(wid, 1, key=key)
        self.assertEqual(again.raw, first.raw)
        self.assertEqual(again.replayed, "true")
        self.assert_wallet(wid, "1", 1)

    def test_zz_server_is_still_up_and_nothing_changed(self):
        # Named to run last in this class: every rejected request above had no effect.
        r = self.get("/health")
        self.assertEqual(r.status, 200, r)
        self.assert_wallet(self.victim, "1000", 1)
        self.assert_wallet(self.peer, "1000", 1)


# ====================================================================== idempotency

class IdempotencyTests(sup.ServerTestCase):

    def assert_replay(self, first, again):
        self.assertIsNone(first.replayed, "a first response must not be marked replayed")
        self.assertEqual(again.status, first.status)
        self.assertEqual(again.raw, first.raw, "replay must be byte-identical")
        self.assertEqual(again.replayed, "true")

    def test_create_replay(self):
        key, wid, owner = new_key(), uid(), uid("owner")
        body = {"walletId": wid, "ownerId": owner, "initialBalance": 50}
        first = self.post("/wallets", body, key=key)
        self.assertEqual(first.status, 201, first)
        again = self.post("/wallets", body, key=key)
        self.assert_replay(first, again)
        self.assert_wallet(wid, "50", 1)

    def test_credit_replay_has_no_new_effect(self):
        wid = self.new_wallet(initial=10)
        key = new_key()
        first = self.credit(wid, "2.50", key=key, description="tip")
        for _ in range(3):
            self.assert_replay(first, self.credit(wid, "2.50", key=key, description="tip"))
        self.assert_wallet(wid, "12.5", 2)

    def test_debit_replay_has_no_new_effect(self):
        wid = self.new_wallet(initial=10)
        key = new_key()
        first = self.debit(wid, 3, key=key)
        self.assert_replay(first, self.debit(wid, 3, key=key))
        self.assert_wallet(wid, "7", 2)

    def test_transfer_replay_has_no_new_effect(self):
        src, dst = self.new_wallet(initial=10), self.new_wallet()
        key = new_key()
        first = self.transfer(src, dst, 4, key=key)
        again = self.transfer(src, dst, 4, key=key)
        self.assert_replay(first, again)
        self.assertEqual(again.json["transferId"], first.json["transferId"])
        self.assert_wallet(src, "6", 2)
        self.assert_wallet(dst, "4", 1)

    def test_replay_returns_original_even_after_later_changes(self):
        wid = self.new_wallet()
        key = new_key()
        first = self.credit(wid, 1, key=key)
        self.credit(wid, 5)
        again = self.credit(wid, 1, key=key)
        self.assert_replay(first, again)
        self.assertEqual(again.json["version"], 1)
        self.assert_wallet(wid, "6", 2)

    def test_insufficient_funds_is_replayed_and_never_flips(self):
        wid = self.new_wallet(initial=5)
        key = new_key()
        first = self.debit(wid, 10, key=key, expect=400)
        self.assert_error(first, 400, "INSUFFICIENT_FUNDS")
        self.credit(wid, 100)
        again = self.debit(wid, 10, key=key, expect=400)
        self.assert_replay(first, again)
        self.assert_wallet(wid, "105", 2)

    def test_insufficient_funds_transfer_is_replayed_and_never_flips(self):
        src, dst = self.new_wallet(initial=1), self.new_wallet()
        key = new_key()
        first = self.transfer(src, dst, 2, key=key, expect=400)
        self.assert_error(first, 400, "INSUFFICIENT_FUNDS")
        self.credit(src, 10)
        self.assert_replay(first, self.transfer(src, dst, 2, key=key, expect=400))
        self.assert_wallet(src, "11", 2)
        self.assert_wallet(dst, "0", 0)

    def test_wallet_not_found_is_replayed_and_never_flips(self):
        wid = uid()
        key = new_key()
        first = self.credit(wid, 1, key=key, expect=404)
        self.assert_error(first, 404, "WALLET_NOT_FOUND")
        self.create_wallet(wid)
        self.assert_replay(first, self.credit(wid, 1, key=key, expect=404))
        self.assert_wallet(wid, "0", 0)

    def test_wallet_already_exists_is_replayed(self):
        wid, owner = uid(), uid("owner")
        self.create_wallet(wid, owner)
        key = new_key()
        body = {"walletId": wid, "ownerId": owner}
        first = self.post("/wallets", body, key=key)
        self.assert_error(first, 409, "WALLET_ALREADY_EXISTS")
        self.assert_replay(first, self.post("/wallets", body, key=key))

    def test_same_key_with_a_different_request_is_409(self):
        a, b = self.new_wallet(initial=100), self.new_wallet(initial=100)
        key = new_key()
        self.credit(a, 1, key=key, description="d")
        different = [
            (f"/wallets/{a}/credit", {"amount": 2, "description": "d"}),          # amount
            (f"/wallets/{b}/credit", {"amount": 1, "description": "d"}),          # wallet
            (f"/wallets/{a}/debit", {"amount": 1, "description": "d"}),           # endpoint
            (f"/wallets/{a}/credit", {"amount": 1, "description": "other"}),      # description
            (f"/wallets/{a}/transfer", {"toWalletId": b, "amount": 1}),           # endpoint
            ("/wallets", {"walletId": uid(), "ownerId": "o"}),                    # endpoint
        ]
        for path, body in different:
            with self.subTest(path=path, body=body):
                r = self.post(path, body, key=key)
                self.assert_error(r, 409, "IDEMPOTENCY_KEY_REUSED")
                self.assertIsNone(r.replayed)
        self.assert_wallet(a, "101", 2)
        self.assert_wallet(b, "100", 1)

    def test_key_of_a_failed_request_cannot_be_reused_for_another(self):
        wid = self.new_wallet(initial=1)
        key = new_key()
        self.debit(wid, 5, key=key, expect=400)
        r = self.debit(wid, 1, key=key, expect=409)
        self.assert_error(r, 409, "IDEMPOTENCY_KEY_REUSED")
        self.assert_wallet(wid, "1", 1)

    def test_key_used_for_create_cannot_be_reused_for_credit(self):
        key = new_key()
        wid = self.create_wallet(key=key).json["id"]
        r = self.credit(wid, 1, key=key, expect=409)
        self.assert_error(r, 409, "IDEMPOTENCY_KEY_REUSED")
        self.assert_wallet(wid, "0", 0)

    def test_requests_rejected_while_decoding_are_not_recorded(self):
        wid = self.new_wallet()
        key = new_key()
        r = self.post(f"/wallets/{wid}/credit", '{"amount":', key=key)
        self.assert_error(r, 400, "INVALID_JSON")
        r = self.post(f"/wallets/{wid}/credit", {"amount": "abc"}, key=key)
        self.assert_error(r, 400, "INVALID_AMOUNT")
        self.assertIsNone(r.replayed)
        r = self.post(f"/wallets/{wid}/credit", {"amount": 1, "description": 7}, key=key)
        self.assert_error(r, 400, "INVALID_FIELD")
        first = self.credit(wid, 3, key=key)
        self.assertIsNone(first.replayed)
        self.assert_snapshot(first, balance="3", version=1)
        self.assert_replay(first, self.credit(wid, 3, key=key))
        self.assert_wallet(wid, "3", 1)

    def test_empty_key_means_no_key(self):
        wid = self.new_wallet()
        a = self.credit(wid, 1, key="")
        b = self.credit(wid, 1, key="")
        self.assertIsNone(a.replayed)
        self.assertIsNone(b.replayed)
        self.assert_wallet(wid, "2", 2)

    def test_different_keys_are_independent(self):
        wid = self.new_wallet()
        for _ in range(3):
            self.credit(wid, 1, key=new_key())
        self.assert_wallet(wid, "3", 3)

    def test_same_key_on_different_wallets_is_409_not_shared_effect(self):
        a, b = self.new_wallet(), self.new_wallet()
        key = new_key()
        self.credit(a, 1, key=key)
        self.assert_error(self.credit(b, 1, key=key, expect=409), 409, "IDEMPOTENCY_KEY_REUSED")
        self.assert_wallet(b, "0", 0)

    def test_get_ignores_idempotency_key(self):
        wid = self.new_wallet()
        key = new_key()
        r1 = self.get(f"/wallets/{wid}", headers={"Idempotency-Key": key})
        self.credit(wid, 1)
        r2 = self.get(f"/wallets/{wid}", headers={"Idempotency-Key": key})
        self.assertEqual(r1.status, 200)
        self.assertEqual(r2.json["version"], 1)
        self.assertIsNone(r2.replayed)


# ====================================================================== routing, HTTP

class RoutingTests(sup.ServerTestCase):

    def test_unknown_routes(self):
        for method, path in [("GET", "/nope"), ("POST", "/nope"), ("GET", "/wallets/x/unknown"),
                             ("POST", "/wallets/x/unknown"), ("POST", "/wallets/x/credit/extra"),
                             ("GET", "/api/wallets"), ("GET", "/walletsx"),
                             ("POST", "/wallets/x/y/transfer")]:
            with self.subTest(method=method, path=path):
                body = {"amount": 1} if method == "POST" else None
                self.assert_error(self.call(method, path, body), 404, "ROUTE_NOT_FOUND")

    def test_wrong_method_is_405_with_allow(self):
        wid = self.new_wallet(initial=3)
        cases = [("DELETE", f"/wallets/{wid}", "GET"),
                 ("PUT", f"/wallets/{wid}", "GET"),
                 ("GET", f"/wallets/{wid}/credit", "POST"),
                 ("GET", f"/wallets/{wid}/debit", "POST"),
                 ("PUT", f"/wallets/{wid}/transfer", "POST"),
                 ("PATCH", f"/wallets/{wid}/credit", "POST"),
                 ("PUT", "/wallets", "POST"),
                 ("DELETE", "/wallets", "POST"),
                 ("POST", "/health", "GET"),
                 ("DELETE", "/ledger/health", "GET")]
        for method, path, allowed in cases:
            with self.subTest(method=method, path=path):
                body = {"amount": 1} if method in ("PUT", "PATCH") else None
                r = self.call(method, path, body)
                self.assert_error(r, 405, "METHOD_NOT_ALLOWED")
                self.assertIn("allow", r.headers, r.headers)
                allow = [m.strip().upper() for m in r.headers["allow"].split(",")]
                self.assertIn(allowed, allow)
                self.assertNotIn(method, allow)
        self.assert_wallet(wid, "3", 1)  # none of it had an effect

    def test_keep_alive_reuses_one_connection(self):
        wid = self.new_wallet()
        conn = self.server.connect()
        try:
            status, _, _ = self.server.request_on(conn, "GET", "/health")
            self.assertEqual(status, 200)
            sock = conn.sock
            self.assertIsNotNone(sock)
            sequence = [("POST", f"/wallets/{wid}/credit", {"amount": 1}, 201),
                        ("GET", f"/wallets/{wid}", None, 200),
                        ("POST", f"/wallets/{wid}/debit", {"amount": 50}, 400),
                        ("GET", "/nope", None, 404),
                        ("DELETE", f"/wallets/{wid}", None, 405),
                        ("POST", f"/wallets/{wid}/credit", "{", 400),
                        ("GET", f"/wallets/{wid}", None, 200)]
            for method, path, body, expected in sequence:
                status, headers, raw = self.server.request_on(conn, method, path, body)
                self.assertEqual(status, expected, (method, path, raw))
                self.assertIs(conn.sock, sock, f"connection not kept alive after {method} {path}")
            self.assertEqual(sup.loads(raw)["version"], 1)
        finally:
            conn.close()

    def test_pipelined_requests_are_answered_in_order(self):
        wid = self.new_wallet()
        data = (build_request("GET", "/health")
                + build_request("POST", f"/wallets/{wid}/credit", '{"amount":2.5}')
                + build_request("GET", f"/wallets/{wid}"))
        with self.server.raw_socket() as sock:
            sock.sendall(data)
            f = sock.makefile("rb")
            s1, h1, b1 = read_response(f)
            s2, h2, b2 = read_response(f)
            s3, h3, b3 = read_response(f)
        self.assertEqual(s1, 200)
        self.assertEqual(sup.loads(b1)["status"], "ok")
        self.assertEqual(s2, 201, b2)
        self.assertIn(b'"balance":2.5,', b2)
        self.assertEqual(s3, 200, b3)
        self.assertEqual(sup.loads(b3)["version"], 1)
        self.assertIn(b'"balance":2.5,', b3)
        for h in (h1, h2, h3):
            self.assertIn("x-correlation-id", h)

    def test_many_pipelined_requests(self):
        wid = self.new_wallet()
        n = 50
        data = b"".join(build_request("POST", f"/wallets/{wid}/credit", '{"amount":"0.01"}')
                        for _ in range(n))
        with self.server.raw_socket() as sock:
            sock.sendall(data + build_request("GET", f"/wallets/{wid}"))
            f = sock.makefile("rb")
            versions = []
            for _ in range(n):
                status, _, body = read_response(f)
                self.assertEqual(status, 201, body)
                versions.append(sup.loads(body)["version"])
            status, _, body = read_response(f)
        self.assertEqual(versions, list(range(1, n + 1)))
        self.assertEqual(status, 200)
        self.assertIn(b'"balance":0.5,', body)

    def test_server_survives_garbage_and_abrupt_disconnects(self):
        for junk in [b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                     b"POST /wallets HTTP/1.1\r\nContent-Length: 10\r\n\r\n{",  # then hang up
                     b"GET /health HTTP/1.1\r\nHost: x\r\n"]:  # incomplete head, hang up
            with self.server.raw_socket(timeout=5) as sock:
                sock.sendall(junk)
                sock.shutdown(socket.SHUT_WR)
                try:
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass
        self.assertEqual(self.get("/health").status, 200)


# ====================================================================== durability

class DurabilityTests(sup.ServerTestCase):
    """A fresh server per test (not per class); restarts on the same data directory."""

    @classmethod
    def setUpClass(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        pass

    def setUp(self):
        self.server = WallexServer(sup.BIN)
        self.server.last_position = 0

    def tearDown(self):
        try:
            if self.server.is_running():
                self.server.stop()
        finally:
            self.server.cleanup()

    def populate(self):
        """A few wallets with credits, debits and transfers; returns {id: snapshot}."""
        a, b, c = self.new_wallet(initial=Raw("100.10")), self.new_wallet(), self.new_wallet(initial=5)
        self.credit(b, Raw("0.1"))
        self.credit(b, Raw("0.2"))
        self.debit(a, Raw("0.10"))
        self.transfer(a, c, Raw("33.33"))
        self.transfer(c, b, 1)
        empty = self.new_wallet()
        return {w: self.wallet(w) for w in (a, b, c, empty)}

    def assert_state(self, expected):
        for wid, snap in expected.items():
            self.assertEqual(self.wallet(wid), snap)

    def test_graceful_restart_preserves_every_wallet(self):
        state = self.populate()
        self.server.stop()
        self.server.restart()
        self.assert_state(state)
        b = list(state)[1]
        self.assertIn('"balance":1.3,', self.get(f"/wallets/{b}").text)

    def test_kill9_restart_preserves_every_acknowledged_wallet(self):
        state = self.populate()
        self.server.kill9()
        self.server.restart()
        self.assert_state(state)

    def test_wallets_keep_working_after_restart(self):
        state = self.populate()
        self.server.kill9()
        self.server.restart()
        a, b, c, empty = state
        r = self.transfer(a, empty, 1)
        self.check_snapshot(r.json["fromWallet"], balance=D(state[a]["balance"]) - 1,
                            version=state[a]["version"] + 1)
        self.check_snapshot(r.json["toWallet"], balance="1", version=1)
        self.assert_error(self.create_wallet(b, expect=409), 409, "WALLET_ALREADY_EXISTS")
        self.assert_error(self.debit(c, 1000, expect=400), 400, "INSUFFICIENT_FUNDS")

    def test_a_second_server_on_the_same_data_directory_is_refused(self):
        # Two servers on one embedded store would each decide against their own memory and could
        # spend a wallet's money twice: the second is refused at start (wallex.lock), and the
        # first goes on. A PostgreSQL store is shared by design: there a second server starts.
        state = self.populate()
        if self.server.store_url:
            second = WallexServer(sup.BIN, data_dir=self.server.data_dir,
                                  store_url=self.server.store_url)
            try:
                self.assertEqual(second.request("GET", "/health", None, {})[0], 200)
            finally:
                second.stop()
                second.cleanup()
        else:
            second = subprocess.run(
                [sup.BIN, "serve", "--port", str(free_port()), "--data-dir", self.server.data_dir],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
            self.assertEqual(second.returncode, 1, second.stderr)
            self.assertIn("one wallex serve per data directory", second.stderr)
        self.assert_state(state)
        self.assertEqual(self.credit(list(state)[0], 1).status, 201)

    def test_sigint_is_a_graceful_shutdown(self):
        state = self.populate()
        proc = self.server.proc
        proc.send_signal(signal.SIGINT)
        self.assertEqual(proc.wait(timeout=10), 0, self.server.stderr_tail())
        self.server.restart()
        self.assert_state(state)

    def test_repeated_restarts(self):
        wid = self.new_wallet()
        for i in range(1, 5):
            self.credit(wid, Raw("1.01"))
            if i % 2:
                self.server.kill9()
            else:
                self.server.stop()
            self.server.restart()
            self.assert_wallet(wid, Decimal("1.01") * i, i)

    def test_idempotency_keys_survive_graceful_restart(self):
        self.check_keys_survive(self.server.stop)

    def test_idempotency_keys_survive_kill9(self):
        self.check_keys_survive(self.server.kill9)

    def check_keys_survive(self, shutdown):
        a, b = self.new_wallet(initial=10), self.new_wallet()
        k_credit, k_fail, k_transfer, k_create = new_key(), new_key(), new_key(), new_key()
        new_id = uid()
        first_credit = self.credit(a, "2.5", key=k_credit)
        first_fail = self.debit(b, 1, key=k_fail, expect=400)
        first_transfer = self.transfer(a, b, 3, key=k_transfer)
        first_create = self.create_wallet(new_id, owner_id="own", key=k_create)
        shutdown()
        self.server.restart()
        self.credit(b, 50)  # the failed debit would now succeed if it were re-executed
        for name, first, again in [
                ("credit", first_credit, lambda: self.credit(a, "2.5", key=k_credit)),
                ("failed debit", first_fail, lambda: self.debit(b, 1, key=k_fail, expect=400)),
                ("transfer", first_transfer, lambda: self.transfer(a, b, 3, key=k_transfer)),
                ("create", first_create,
                 lambda: self.create_wallet(new_id, owner_id="own", key=k_create))]:
            with self.subTest(replay=name):
                r = again()
                self.assertEqual(r.status, first.status)
                self.assertEqual(r.raw, first.raw, "replay after restart must be byte-identical")
                self.assertEqual(r.replayed, "true")
        self.assert_error(self.credit(a, 99, key=k_credit, expect=409), 409,
                          "IDEMPOTENCY_KEY_REUSED")
        self.assert_wallet(a, "9.5", 3)
        self.assert_wallet(b, "53", 2)
        self.assert_wallet(new_id, "0", 0)

    def test_positions_keep_increasing_after_restart(self):
        wid = self.new_wallet()
        before = self.position_of(self.credit(wid, 1))
        self.server.kill9()
        self.server.restart()
        after = self.position_of(self.credit(wid, 1))
        self.assertGreater(after, before)
        self.server.stop()
        self.server.restart()
        self.assertGreater(self.position_of(self.credit(wid, 1)), after)

    def test_kill9_during_concurrent_writes_loses_and_doubles_nothing(self):
        n_threads = 8
        wallets = [self.new_wallet() for _ in range(n_threads)]
        pair = (self.new_wallet(initial=1000), self.new_wallet(initial=1000))
        acked = [0] * n_threads
        in_flight = [None] * n_threads
        transfers_acked = [0]
        unexpected = []
        stop = threading.Event()
        server = self.server

        def credit_loop(i):
            while not stop.is_set():
                key = new_key()
                in_flight[i] = key
                try:
                    status, _, raw = server.request("POST", f"/wallets/{wallets[i]}/credit",
                                                    {"amount": 1}, {"Idempotency-Key": key},
                                                    timeout=10)
                except OSError:
                    return  # the server is gone
                if status != 201:
                    unexpected.append((status, raw))
                    return
                acked[i] += 1
                in_flight[i] = None

        def transfer_loop():
            i = 0
            while not stop.is_set():
                src, dst = pair if i % 2 == 0 else pair[::-1]
                try:
                    status, _, raw = server.request("POST", f"/wallets/{src}/transfer",
                                                    {"toWalletId": dst, "amount": "0.01"},
                                                    timeout=10)
                except OSError:
                    return
                if status != 201:
                    unexpected.append((status, raw))
                    return
                transfers_acked[0] += 1
                i += 1

        threads = [threading.Thread(target=credit_loop, args=(i,)) for i in range(n_threads)]
        threads.append(threading.Thread(target=transfer_loop))
        for t in threads:
            t.start()
        time.sleep(1.5)
        server.kill9()
        stop.set()
        for t in threads:
            t.join(timeout=30)
        self.assertEqual(unexpected, [])
        self.assertGreater(sum(acked), 0, "no write was acknowledged before the kill")
        server.restart()
        for i, wid in enumerate(wallets):
            snap = self.wallet(wid)
            self.assertIn(snap["version"], (acked[i], acked[i] + 1), (wid, acked[i], snap))
            self.assertEqual(D(snap["balance"]), Decimal(snap["version"]), snap)
            if in_flight[i] is not None:
                # Retrying the unacknowledged request: replayed or executed, never applied twice.
                r = self.credit(wid, 1, key=in_flight[i])
                self.assertEqual(r.json["version"], acked[i] + 1)
                self.assert_wallet(wid, acked[i] + 1, acked[i] + 1)
        s0, s1 = self.wallet(pair[0]), self.wallet(pair[1])
        self.assertEqual(D(s0["balance"]) + D(s1["balance"]), Decimal(2000))
        moves = (s0["version"] - 1) + (s1["version"] - 1)
        self.assertEqual(moves % 2, 0, "a transfer must touch both wallets or neither")
        self.assertIn(moves // 2, (transfers_acked[0], transfers_acked[0] + 1))


if __name__ == "__main__":
    unittest.main()
