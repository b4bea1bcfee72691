"""Shared helpers for the Wallex end-to-end tests: a TestCase base with one server per class,
small request helpers and contract assertions (snapshot shape, error shape, headers)."""

import json
import re
import threading
import unittest
import uuid
from decimal import Decimal

from wallex_server import WallexServer, loads, wallex_binary

BIN = wallex_binary()  # raises at import time when WALLEX_BIN is missing

SNAPSHOT_KEYS = ["id", "ownerId", "balance", "version", "createdAt", "updatedAt"]
ERROR_KEYS = ["statusCode", "message", "error", "code"]
REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
           413: "Payload Too Large", 431: "Request Header Fields Too Large",
           503: "Service Unavailable"}
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# A non-negative JSON number with at most two decimals, written minimally: 0, 100, 130.5, 0.05
MINIMAL_BALANCE_RE = re.compile(r"^(0|[1-9][0-9]*)(\.[0-9]?[1-9])?$")
BALANCE_TEXT_RE = re.compile(r'"balance":([^,}\s]*)')


def uid(prefix="w"):
    return f"{prefix}-{uuid.uuid4().hex}"


def new_key():
    return f"key-{uuid.uuid4()}"


def D(value):
    """Exact Decimal from a str/int/Decimal (never from a float)."""
    if isinstance(value, float):
        raise TypeError("use strings for money in tests, not floats")
    return Decimal(str(value)) if not isinstance(value, Decimal) else value


def media_type(headers):
    return headers.get("content-type", "").split(";")[0].strip().lower()


class Raw(str):
    """A JSON fragment inserted verbatim by to_json (e.g. Raw('10.500'), Raw('NaN'))."""


def to_json(value):
    """Compact JSON where Decimal and Raw values keep their exact text."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k) + ":" + to_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


class Reply:
    """One HTTP response: status, lower-case headers, raw bytes, text, and parsed JSON or None."""

    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        self.text = raw.decode("utf-8", "replace")
        try:
            self.json = loads(raw) if raw else None
        except ValueError:
            self.json = None

    @property
    def replayed(self):
        return self.headers.get("idempotent-replayed")

    def __repr__(self):
        text = self.text if len(self.text) < 600 else self.text[:600] + "..."
        return f"<Reply {self.status} {text}>"


class ServerTestCase(unittest.TestCase):
    """Starts one Wallex server for the class; stops it (asserting exit code 0) afterwards."""

    server = None
    maxDiff = None
    SERVER_ARGS = ()  # extra `wallex serve` options of this class's server

    @classmethod
    def setUpClass(cls):
        cls.server = WallexServer(BIN, extra_args=cls.SERVER_ARGS)
        cls.server.last_position = 0

    @classmethod
    def tearDownClass(cls):
        server, cls.server = cls.server, None
        if server is None:
            return
        try:
            server.stop()
        finally:
            server.cleanup()

    # ------------------------------------------------------------------ raw calls

    def call(self, method, path, body=None, headers=None, key=None):
        """One request; checks the headers every response must carry."""
        hdrs = dict(headers or {})
        if key is not None:
            hdrs["Idempotency-Key"] = key
        if body is not None and not isinstance(body, (str, bytes, bytearray)):
            body = to_json(body)
        status, rh, raw = self.server.request(method, path, body, hdrs)
        reply = Reply(status, rh, raw)
        self.assertIn("x-correlation-id", rh, f"{method} {path}: no X-Correlation-Id")
        if path != "/":
            self.assertEqual(media_type(rh), "application/json", f"{method} {path}: {rh}")
        if 200 <= status < 300 and method == "POST" and not reply.replayed:
            self.assert_position_increases(reply)
        return reply

    def post(self, path, body, key=None, headers=None):
        return self.call("POST", path, body, headers, key)

    def get(self, path, headers=None):
        return self.call("GET", path, None, headers)

    def assert_position_increases(self, reply):
        pos = self.position_of(reply)
        last = getattr(self.server, "last_position", 0)
        self.assertGreater(pos, last, "X-Wallex-Position must strictly increase across commands")
        self.server.last_position = pos
        return pos

    def position_of(self, reply):
        text = reply.headers.get("x-wallex-position")
        self.assertIsNotNone(text, f"successful command without X-Wallex-Position: {reply}")
        self.assertRegex(text, r"^[1-9][0-9]*$")
        return int(text)

    # ------------------------------------------------------------------ commands

    def create_wallet(self, wallet_id=None, owner_id=None, initial=None, key=None, expect=201,
                      **extra):
        wallet_id = wallet_id if wallet_id is not None else uid()
        body = {"walletId": wallet_id, "ownerId": owner_id if owner_id is not None else uid("owner")}
        if initial is not None:
            body["initialBalance"] = initial
        body.update(extra)
        reply = self.post("/wallets", body, key=key)
        if expect is not None:
            self.assertEqual(reply.status, expect, reply)
        if expect == 201:
            self.assert_snapshot(reply, id=wallet_id, owner=body["ownerId"])
        return reply

    def new_wallet(self, initial=None):
        """Creates a wallet and returns its id."""
        reply = self.create_wallet(initial=initial)
        return reply.json["id"]

    def credit(self, wallet_id, amount, key=None, expect=201, **extra):
        return self._money_op("credit", wallet_id, amount, key, expect, extra)

    def debit(self, wallet_id, amount, key=None, expect=201, **extra):
        return self._money_op("debit", wallet_id, amount, key, expect, extra)

    def _money_op(self, op, wallet_id, amount, key, expect, extra):
        reply = self.post(f"/wallets/{wallet_id}/{op}", {"amount": amount, **extra}, key=key)
        if expect is not None:
            self.assertEqual(reply.status, expect, reply)
        if expect == 201:
            self.assert_snapshot(reply, id=wallet_id)
        return reply

    def transfer(self, from_id, to_id, amount, key=None, expect=201, **extra):
        reply = self.post(f"/wallets/{from_id}/transfer",
                          {"toWalletId": to_id, "amount": amount, **extra}, key=key)
        if expect is not None:
            self.assertEqual(reply.status, expect, reply)
        if expect == 201:
            self.assertEqual(list(reply.json.keys()), ["fromWallet", "toWallet", "transferId"])
            self.assertRegex(reply.json["transferId"], UUID_RE)
            self.check_snapshot(reply.json["fromWallet"], id=from_id)
            self.check_snapshot(reply.json["toWallet"], id=to_id)
            self.check_balance_texts(reply.text, expected_count=2)
        return reply

    def wallet(self, wallet_id):
        """GET /wallets/{id}, asserted 200 and well-formed; returns the snapshot dict."""
        reply = self.get(f"/wallets/{wallet_id}")
        self.assertEqual(reply.status, 200, reply)
        self.assert_snapshot(reply, id=wallet_id)
        return reply.json

    # ------------------------------------------------------------------ assertions

    def assert_snapshot(self, reply, **expected):
        """Reply body is one well-formed snapshot (checked on the raw text too)."""
        self.assertIsNotNone(reply.json, f"not JSON: {reply}")
        self.check_snapshot(reply.json, **expected)
        self.check_balance_texts(reply.text, expected_count=1)
        if "balance" in expected:
            self.assertIn(f'"balance":{minimal_text(expected["balance"])}', reply.text)

    def check_snapshot(self, snap, id=None, owner=None, balance=None, version=None):
        self.assertIsInstance(snap, dict)
        self.assertEqual(list(snap.keys()), SNAPSHOT_KEYS, snap)
        self.assertIsInstance(snap["id"], str)
        self.assertIsInstance(snap["ownerId"], str)
        self.assertIsInstance(snap["balance"], (int, Decimal))
        self.assertNotIsInstance(snap["balance"], bool)
        self.assertIsInstance(snap["version"], int)
        self.assertNotIsInstance(snap["version"], bool)
        self.assertGreaterEqual(snap["version"], 0)
        self.assertGreaterEqual(D(snap["balance"]), 0)
        self.assertRegex(snap["createdAt"], TS_RE)
        self.assertRegex(snap["updatedAt"], TS_RE)
        self.assertLessEqual(snap["createdAt"], snap["updatedAt"])
        if id is not None:
            self.assertEqual(snap["id"], id)
        if owner is not None:
            self.assertEqual(snap["ownerId"], owner)
        if balance is not None:
            self.assertEqual(D(snap["balance"]), D(balance), snap)
        if version is not None:
            self.assertEqual(snap["version"], version, snap)

    def check_balance_texts(self, text, expected_count):
        texts = BALANCE_TEXT_RE.findall(text)
        self.assertEqual(len(texts), expected_count, text)
        for t in texts:
            self.assertRegex(t, MINIMAL_BALANCE_RE, f"balance not minimal two-decimal text: {text}")

    def assert_wallet(self, wallet_id, balance, version):
        snap = self.wallet(wallet_id)
        self.assertEqual(D(snap["balance"]), D(balance), snap)
        self.assertEqual(snap["version"], version, snap)
        return snap

    def assert_error(self, reply, status, code, message=None):
        """Reply is exactly {statusCode, message, error, code} with these values."""
        self.assertEqual(reply.status, status, reply)
        self.assertEqual(media_type(reply.headers), "application/json")
        self.assertIsInstance(reply.json, dict, reply)
        self.assertEqual(list(reply.json.keys()), ERROR_KEYS, reply)
        self.assertIs(type(reply.json["statusCode"]), int)
        self.assertEqual(reply.json["statusCode"], status)
        self.assertIsInstance(reply.json["message"], str)
        self.assertTrue(reply.json["message"], "empty error message")
        self.assertEqual(reply.json["error"], REASONS[status])
        codes = code if isinstance(code, (tuple, set, frozenset)) else (code,)
        self.assertIn(reply.json["code"], codes, reply)
        if message is not None:
            self.assertEqual(reply.json["message"], message)


def minimal_text(value):
    """'0.30' -> '0.3', '100.00' -> '100', the way the server must write a balance."""
    d = D(value)
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


def run_threads(n, target):
    """Runs target(i) in n threads; re-raises the first exception from any of them."""
    errors = []

    def wrap(i):
        try:
            target(i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
