"""Hostile HTTP clients against a real `wallex serve` (issue 5, "Hostile HTTP clients").

Slow and idle connections, a flood of connections, pipelining, oversized and malformed requests,
bad encodings. Every case asserts the exact defined outcome — the status and error code of
docs/http-api.md, or a close by the server where the contract says the connection is closed — and
then that a normal request on a fresh connection still succeeds.

Run: WALLEX_BIN=/path/to/wallex python3 -m unittest -v test_hostile   (from tests/e2e)
"""

import resource
import select
import socket
import threading
import time

import e2e_support as sup
from e2e_support import uid
from wallex_server import WallexServer, build_request, read_response

READ_TIMEOUT_MS = 1000
WRITE_TIMEOUT_MS = 1000
BODY_BYTES_MAX = 102400      # the default
HEADER_BYTES_MAX = 16 * 1024  # the default
SLACK_S = 4.0                 # scheduling slack on a busy 2-core machine


def raise_open_file_limit(wanted):
    """Raises this process's soft open-file limit towards `wanted`; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def request_bytes(method, path, body=b"", headers=(), close=False):
    """One raw HTTP/1.1 request with a Content-Length (headers: (name, value) pairs)."""
    lines = [f"{method} {path} HTTP/1.1".encode("latin-1"), b"Host: 127.0.0.1"]
    for name, value in headers:
        lines.append(name.encode("latin-1") + b": " + _bytes(value))
    if body:
        lines.append(b"Content-Type: application/json")
        lines.append(b"Content-Length: " + str(len(body)).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + _bytes(body)


def chunked_request(path, chunks):
    """A POST whose body is sent with Transfer-Encoding: chunked."""
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: 127.0.0.1",
            b"Content-Type: application/json", b"Transfer-Encoding: chunked", b"Connection: close"]
    body = b"".join(f"{len(c):x}".encode() + b"\r\n" + c + b"\r\n" for c in chunks)
    return b"\r\n".join(head) + b"\r\n\r\n" + body + b"0\r\n\r\n"


def _bytes(value):
    return value if isinstance(value, (bytes, bytearray)) else str(value).encode("latin-1")


class Exchange:
    """What one raw connection received: the complete responses, whether the server closed the
    connection (EOF or reset) and any bytes that were not a complete response."""

    def __init__(self, replies, closed, rest):
        self.replies = replies
        self.closed = closed
        self.rest = rest

    def __repr__(self):
        return f"<Exchange closed={self.closed} replies={self.replies} rest={self.rest[:200]!r}>"


class HostileTestCase(sup.ServerTestCase):
    """One server per class, started with `extra_args`; a sentinel wallet proves after each case
    that the server still serves normal requests on a fresh connection."""

    extra_args = ("--read-timeout-ms", str(READ_TIMEOUT_MS),
                  "--write-timeout-ms", str(WRITE_TIMEOUT_MS))
    command_prefix = ()

    @classmethod
    def setUpClass(cls):
        cls.server = WallexServer(sup.BIN, extra_args=cls.extra_args,
                                  command_prefix=cls.command_prefix)
        cls.server.last_position = 0
        cls.sentinel = uid("sentinel")
        cls.sentinel_credits = 0
        status, _, raw = cls.server.request(
            "POST", "/wallets", {"walletId": cls.sentinel, "ownerId": "hostile"})
        if status != 201:
            raise AssertionError(f"cannot create the sentinel wallet: {status} {raw!r}")

    def assert_served(self):
        """A normal request on a fresh connection succeeds, and its effect is exactly one credit."""
        r = self.get("/health")
        self.assertEqual(r.status, 200, r)
        r = self.post(f"/wallets/{self.sentinel}/credit", {"amount": "0.01"})
        self.assertEqual(r.status, 201, r)
        type(self).sentinel_credits += 1
        self.assertEqual(r.json["version"], self.sentinel_credits, r)
        self.assertEqual(sup.D(r.json["balance"]), sup.D(self.sentinel_credits) / 100, r)

    def exchange(self, data, timeout=5.0, shut_write=False):
        """Sends raw bytes on a fresh connection and reads responses until the server closes it
        or `timeout` passes without a byte. A write the server refuses to read is not an error."""
        sock = self.server.raw_socket(timeout=timeout)
        errors = []

        def send():
            try:
                sock.sendall(data)
                if shut_write:
                    sock.shutdown(socket.SHUT_WR)
            except OSError as e:  # the server may close before reading everything
                errors.append(e)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        replies, closed, rest = [], False, b""
        f = sock.makefile("rb")
        try:
            while True:
                try:
                    status, headers, raw = read_response(f)
                except ConnectionError:
                    closed = True
                    break
                except socket.timeout:
                    break
                replies.append(sup.Reply(status, headers, raw))
        except ValueError as e:  # not an HTTP response at all
            rest = repr(e).encode()
        finally:
            sender.join(timeout=10)
            f.close()
            sock.close()
        return Exchange(replies, closed, rest)

    def assert_one_error_then_close(self, data, status, code, **kwargs):
        """The server answers exactly one error response, then closes the connection."""
        ex = self.exchange(data, **kwargs)
        self.assertEqual(len(ex.replies), 1, ex)
        self.assert_error(ex.replies[0], status, code)
        self.assertEqual(ex.replies[0].headers.get("connection", "").lower(), "close", ex)
        self.assertTrue(ex.closed, ex)
        return ex.replies[0]

    def assert_one_reply(self, data, **kwargs):
        """Exactly one response (sent with Connection: close); returns it."""
        ex = self.exchange(data, **kwargs)
        self.assertEqual(len(ex.replies), 1, ex)
        self.assertTrue(ex.closed, ex)
        return ex.replies[0]

    def new_target(self, initial=100):
        return self.new_wallet(initial=initial)


# ====================================================================== malformed requests

class MalformedRequestTests(HostileTestCase):

    def test_oversized_headers_are_431(self):
        too_long = "a" * (HEADER_BYTES_MAX + 1)
        cases = {
            "one long header": request_bytes("GET", "/health", headers=[("X-Big", too_long)]),
            "many headers": request_bytes("GET", "/health",
                                          headers=[(f"X-H{i}", "v" * 40) for i in range(400)]),
            "long target": request_bytes("GET", "/wallets/" + too_long),
            "long body request": request_bytes("POST", f"/wallets/{self.sentinel}/credit",
                                               b'{"amount":1}', headers=[("X-Big", too_long)]),
        }
        for name, data in cases.items():
            with self.subTest(name):
                r = self.assert_one_error_then_close(data, 431, "HEADERS_TOO_LARGE")
                self.assertIn(str(HEADER_BYTES_MAX), r.json["message"])
                self.assert_served()
        # Just under the limit is an ordinary request.
        r = self.assert_one_reply(request_bytes("GET", "/health", close=True,
                                                headers=[("X-Big", "a" * 15000)]))
        self.assertEqual(r.status, 200, r)

    def test_bodies_over_the_limit_are_413(self):
        wid = self.new_target()
        cid = f"corr-{uid()}"
        # Refused on the declared length alone, before the client sends the body.
        head = (f"POST /wallets/{wid}/credit HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: {cid}\r\n"
                f"Content-Length: {BODY_BYTES_MAX + 1}\r\n\r\n").encode()
        r = self.assert_one_error_then_close(head, 413, "PAYLOAD_TOO_LARGE")
        self.assertEqual(r.headers["x-correlation-id"], cid)
        self.assert_served()
        # Chunked: refused once the chunks add up to more than the limit.
        chunks = [b'{"amount":1,"description":"'] + [b"x" * 10000] * 11 + [b'"}']
        r = self.assert_one_error_then_close(chunked_request(f"/wallets/{wid}/credit", chunks),
                                             413, "PAYLOAD_TOO_LARGE")
        self.assert_served()
        # Exactly the limit, chunked, is accepted.
        core = b'{"amount":1}'
        body = core[:-1] + b" " * (BODY_BYTES_MAX - len(core)) + b"}"
        chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
        r = self.assert_one_reply(chunked_request(f"/wallets/{wid}/credit", chunks))
        self.assertEqual(r.status, 201, r)
        self.assert_wallet(wid, "101", 2)
        self.assert_served()

    def test_invalid_utf8_in_json_strings_is_invalid_json(self):
        wid = self.new_target()
        bodies = {
            "invalid bytes": b'{"amount":1,"description":"\xff\xfe"}',
            "invalid key": b'{"amount":1,"\xc3":1}',
            "overlong slash": b'{"amount":1,"description":"\xc0\xaf"}',
            "encoded surrogate": b'{"amount":1,"description":"\xed\xa0\x80"}',
            "truncated sequence": b'{"amount":1,"description":"\xe2\x82"}',
            "above U+10FFFF": b'{"amount":1,"description":"\xf4\x90\x80\x80"}',
            "escaped lone high surrogate": b'{"amount":1,"description":"\\ud800"}',
            "escaped lone low surrogate": b'{"amount":1,"description":"\\udc00x"}',
            "byte order mark": b'\xef\xbb\xbf{"amount":1}',
        }
        for name, body in bodies.items():
            with self.subTest(name):
                self.assert_error(self.post(f"/wallets/{wid}/credit", body), 400, "INVALID_JSON")
        r = self.post("/wallets", b'{"walletId":"w\xff","ownerId":"o"}')
        self.assert_error(r, 400, "INVALID_JSON")
        self.assert_wallet(wid, "100", 1)
        # The same characters, validly encoded, are accepted.
        r = self.post(f"/wallets/{wid}/credit", '{"amount":1,"description":"\\ud83d\\ude00 é"}')
        self.assertEqual(r.status, 201, r)
        self.assert_served()

    def test_invalid_utf8_in_path_segments(self):
        wid = self.new_target()
        cases = [
            ("GET", "/wallets/%FF", "INVALID_WALLET_ID"),
            ("GET", "/wallets/%C3%A9", "INVALID_WALLET_ID"),         # valid UTF-8, not an id
            ("GET", "/wallets/%ED%A0%80", "INVALID_WALLET_ID"),      # an encoded surrogate
            ("GET", "/wallets/%G1", "INVALID_WALLET_ID"),            # broken percent-encoding
            ("GET", "/wallets/%FF/events", "INVALID_WALLET_ID"),
            ("POST", "/wallets/%FF/credit", "INVALID_WALLET_ID"),
            ("POST", f"/wallets/{wid}/transfer", "INVALID_WALLET_ID"),  # in the body
            ("GET", "/ledger/wallet/%FF", "INVALID_WALLET_ID"),
            ("GET", "/ledger/wallet/%FF/summary", "INVALID_WALLET_ID"),
            ("GET", "/ledger/reference/%FF", "INVALID_QUERY"),
            ("GET", "/wallets?ownerId=%FF", "INVALID_QUERY"),
            ("GET", "/wallets?after=%ZZ", "INVALID_QUERY"),
        ]
        for method, path, code in cases:
            with self.subTest(method=method, path=path):
                body = None
                if path.endswith("/credit"):
                    body = {"amount": 1}
                elif path.endswith("/transfer"):
                    body = {"amount": 1, "toWalletId": "b\u00ff"}   # UTF-8, but not an id
                self.assert_error(self.call(method, path, body), 400, code)
        # Raw bytes above 0x7F in the request target: Beast accepts them as obs-text, the id
        # check refuses them.
        for raw_path in (b"/wallets/\xff", b"/wallets/\xc3\xa9"):
            with self.subTest(raw_path=raw_path):
                data = b"GET " + raw_path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                self.assert_error(self.assert_one_reply(data), 400, "INVALID_WALLET_ID")
        self.assert_wallet(wid, "100", 1)
        self.assert_served()

    def test_duplicate_json_keys_are_invalid_body(self):
        wid, peer = self.new_target(), self.new_target()
        cases = [
            (f"/wallets/{wid}/credit", '{"amount":1,"amount":2}'),
            (f"/wallets/{wid}/credit", '{"amount":1,"\\u0061mount":2}'),   # same key, escaped
            (f"/wallets/{wid}/debit", '{"amount":1,"description":"a","description":"a"}'),
            (f"/wallets/{wid}/transfer", f'{{"toWalletId":"{peer}","amount":1,'
                                         f'"toWalletId":"{wid}"}}'),
            ("/wallets", f'{{"walletId":"{uid()}","ownerId":"o","ownerId":"p"}}'),
        ]
        for path, body in cases:
            with self.subTest(path=path, body=body):
                r = self.post(path, body)
                self.assert_error(r, 400, "INVALID_BODY")
                self.assertIn("duplicate key", r.json["message"])
        self.assert_wallet(wid, "100", 1)
        self.assert_wallet(peer, "100", 1)
        # Duplicates inside an ignored nested value are not ambiguous for Wallex: accepted.
        r = self.post(f"/wallets/{wid}/credit", '{"amount":1,"extra":{"a":1,"a":2}}')
        self.assertEqual(r.status, 201, r)
        self.assert_served()

    def test_deeply_nested_json_is_invalid_body(self):
        wid = self.new_target()
        ok = '{"amount":1,"extra":' + "[" * 15 + "]" * 15 + "}"    # depth 16: the limit
        self.assertEqual(self.post(f"/wallets/{wid}/credit", ok).status, 201)
        bodies = {
            "depth 17": '{"amount":1,"extra":' + "[" * 16 + "]" * 16 + "}",
            "50,000 arrays": '{"amount":1,"extra":' + "[" * 50000 + "]" * 50000 + "}",
            "unclosed 100,000 arrays": '{"amount":1,"extra":' + "[" * 100000,
            "16,000 objects": '{"amount":1,"extra":' + '{"a":' * 16000 + "1" + "}" * 16000 + "}",
        }
        for name, body in bodies.items():
            with self.subTest(name):
                self.assertLessEqual(len(body), BODY_BYTES_MAX)
                r = self.post(f"/wallets/{wid}/credit", body)
                self.assert_error(r, 400, "INVALID_BODY")
                self.assertIn("deeper than 16", r.json["message"])
        self.assert_wallet(wid, "101", 2)
        self.assert_served()

    def test_nul_bytes(self):
        wid = self.new_target()
        for name, body in {"raw NUL in a string": b'{"amount":1,"description":"a\x00b"}',
                           "NUL after the object": b'{"amount":1}\x00',
                           "NUL before the object": b'\x00{"amount":1}'}.items():
            with self.subTest(name):
                self.assert_error(self.post(f"/wallets/{wid}/credit", body), 400, "INVALID_JSON")
        r = self.post("/wallets", b'{"walletId":"a\\u0000b","ownerId":"o"}')
        self.assert_error(r, 400, "INVALID_WALLET_ID")
        r = self.post(f"/wallets/{wid}/transfer", b'{"toWalletId":"a\\u0000b","amount":1}')
        self.assert_error(r, 400, "INVALID_WALLET_ID")
        self.assert_error(self.get("/wallets/a%00b"), 400, "INVALID_WALLET_ID")
        # A NUL in the request line or a header is bad HTTP.
        self.assert_one_error_then_close(b"GET /wallets/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
                                         400, "MALFORMED_REQUEST")
        self.assert_one_error_then_close(b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
                                         400, "MALFORMED_REQUEST")
        self.assert_wallet(wid, "100", 1)
        # An escaped NUL in a description is a valid string: stored and given back escaped.
        r = self.post(f"/wallets/{wid}/credit", b'{"amount":1,"description":"a\\u0000b"}')
        self.assertEqual(r.status, 201, r)
        position = self.position_of(r)
        events = self.get(f"/wallets/{wid}/events?fromVersion=2&minPosition={position}")
        self.assertEqual(events.status, 200, events)
        self.assertIn(b'"description":"a\\u0000b"', events.raw)
        self.assertEqual(events.json["events"][0]["data"]["description"], "a\x00b")
        self.assert_served()

    def test_bad_content_length(self):
        wid = self.new_target()
        body = b'{"amount":1}'
        head = f"POST /wallets/{wid}/credit HTTP/1.1\r\nHost: x\r\n".encode()
        for value in [b"abc", b"-1", b"1.5", b"0x10", b"+12", b"99999999999999999999999", b""]:
            with self.subTest(value=value):
                data = head + b"Content-Length: " + value + b"\r\n\r\n" + body
                r = self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
                self.assertIn("Content-Length", r.json["message"])
        with self.subTest("two different lengths"):
            data = head + b"Content-Length: 12\r\nContent-Length: 13\r\n\r\n" + body
            self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
        with self.subTest("length and chunked"):
            data = (head + b"Content-Length: 12\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"c\r\n" + body + b"\r\n0\r\n\r\n")
            self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
        self.assert_wallet(wid, "100", 1)
        with self.subTest("shorter than the body"):
            # The declared 5 bytes are the body (invalid JSON); the rest is read as the start of
            # another request, which is bad HTTP: the connection is then closed.
            ex = self.exchange(head + b"Content-Length: 5\r\n\r\n" + body)
            self.assertEqual([r.status for r in ex.replies], [400, 400], ex)
            self.assert_error(ex.replies[0], 400, "INVALID_JSON")
            self.assert_error(ex.replies[1], 400, "MALFORMED_REQUEST")
            self.assertTrue(ex.closed, ex)
        self.assert_wallet(wid, "100", 1)
        self.assert_served()

    def test_chunked_bodies(self):
        wid = self.new_target()
        path = f"/wallets/{wid}/credit"
        r = self.assert_one_reply(chunked_request(path, [b'{"amo', b'unt":1}']))
        self.assertEqual(r.status, 201, r)
        one_byte_chunks = [bytes([b]) for b in b'{"amount":2,"description":"bytewise"}']
        r = self.assert_one_reply(chunked_request(path, one_byte_chunks))
        self.assertEqual(r.status, 201, r)
        # Chunk extensions and trailer fields are allowed and ignored.
        data = (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                "Connection: close\r\n\r\n5;name=value\r\n{\"amo\r\n7\r\nunt\":3}\r\n"
                "0\r\nX-Trailer: t\r\n\r\n").encode()
        r = self.assert_one_reply(data)
        self.assertEqual(r.status, 201, r)
        self.assert_wallet(wid, "106", 4)

        head = f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        malformed = {
            "size not hex": head + b"zz\r\n{\"amount\":1}\r\n0\r\n\r\n",
            "size overflows": head + b"ffffffffffffffffffffff\r\n{\"amount\":1}\r\n0\r\n\r\n",
            "data longer than its size": head + b"2\r\n{\"amount\":1}\r\n0\r\n\r\n",
            "missing CRLF after data": head + b"c\r\n{\"amount\":1}0\r\n\r\n",
        }
        for name, data in malformed.items():
            with self.subTest(name):
                self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
        # Codings other than plain chunked are refused. Without this, a "gzip" body would be
        # left in the stream and read as the next request.
        body = b'{"amount":1}'
        for coding in [b"gzip", b"identity", b"gzip, chunked", b"chunked, chunked", b"chunkedx"]:
            with self.subTest(coding=coding):
                data = (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ".encode() +
                        coding + b"\r\n\r\n" +
                        (b"c\r\n" + body + b"\r\n0\r\n\r\n" if b"chunked" in coding else body))
                r = self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
                self.assertIn("Transfer-Encoding", r.json["message"])
        with self.subTest("two Transfer-Encoding fields"):
            data = (f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                    "Transfer-Encoding: chunked\r\n\r\nc\r\n").encode() + body + b"\r\n0\r\n\r\n"
            self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
        r = self.assert_one_reply(chunked_request(path, [body]).replace(
            b"Transfer-Encoding: chunked", b"Transfer-Encoding: Chunked"))
        self.assertEqual(r.status, 201, r)  # the coding's name is case-insensitive
        self.assert_wallet(wid, "107", 5)
        self.assert_served()

    def test_unknown_and_malformed_methods(self):
        wid = self.new_target()
        cases = [
            ("FOO", f"/wallets/{wid}", 405, "GET"),
            ("FOO", "/wallets", 405, "GET, POST"),
            ("FOO", f"/wallets/{wid}/credit", 405, "POST"),
            ("get", "/health", 405, "GET"),                   # methods are case-sensitive
            ("BREW", "/", 405, "GET"),
            ("OPTIONS", "/wallets", 405, "GET, POST"),
            ("TRACE", "/health", 405, "GET"),
            ("A" * 2000, "/health", 405, "GET"),
            ("FOO", "/nope", 404, None),
            ("OPTIONS", "*", 404, None),
            ("GET", "http://127.0.0.1/health", 404, None),   # absolute form is not routed
        ]
        for method, path, status, allow in cases:
            with self.subTest(method=method[:20], path=path):
                r = self.assert_one_reply(request_bytes(method, path, close=True))
                self.assert_error(r, status, "METHOD_NOT_ALLOWED" if status == 405
                                  else "ROUTE_NOT_FOUND")
                if allow is not None:
                    self.assertEqual(r.headers["allow"], allow)
        malformed = {
            "bad method characters": b"GE(T /health HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "HTTP/1.2": b"GET /health HTTP/1.2\r\nHost: x\r\n\r\n",
            "no version": b"GET /health\r\n\r\n",
            "header without colon": b"GET /health HTTP/1.1\r\nHost x\r\n\r\n",
            "space before colon": b"GET /health HTTP/1.1\r\nHost : x\r\n\r\n",
            "bare LF line ends": b"GET /health HTTP/1.1\nHost: x\n\n",
            "binary garbage": bytes(range(256)) + b"\r\n\r\n",
        }
        for name, data in malformed.items():
            with self.subTest(name):
                self.assert_one_error_then_close(data, 400, "MALFORMED_REQUEST")
        self.assert_wallet(wid, "100", 1)
        self.assert_served()

    def test_a_response_to_head_has_no_body(self):
        # HEAD is answered like any method the route does not allow, but without the body: a
        # body would be read by the client as the start of its next response.
        data = (build_request("HEAD", "/health") + build_request("GET", "/ledger/health")
                + build_request("HEAD", "/nope", headers={"Connection": "close"}))
        with self.server.raw_socket(timeout=5) as sock:
            sock.sendall(data)
            f = sock.makefile("rb")
            status_line = f.readline()
            head = {}
            while (line := f.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                head[name.strip().lower()] = value.strip()
            second = read_response(f)
            third_status = f.readline()
            while f.readline() not in (b"\r\n", b""):
                pass
            rest = f.read()
        self.assertIn(b" 405 ", status_line)
        self.assertEqual(head["allow"], "GET")
        self.assertGreater(int(head["content-length"]), 0)  # the length of the GET-style body
        self.assertEqual(second[0], 200, second)
        self.assertEqual(sup.loads(second[2]), {"status": "ok", "module": "ledger"})
        self.assertIn(b" 404 ", third_status)
        self.assertEqual(rest, b"")
        self.assert_served()


# ====================================================================== pipelining

class PipeliningTests(HostileTestCase):

    def pipeline(self, wid):
        """Twelve requests of every kind; each carries its index as correlation id."""
        peer = self.new_target(initial=0)
        requests = [
            ("GET", "/health", None, 200),
            ("POST", f"/wallets/{wid}/credit", '{"amount":5}', 201),
            ("POST", f"/wallets/{wid}/credit", '{"amount":', 400),
            ("GET", "/nope", None, 404),
            ("DELETE", f"/wallets/{wid}", None, 405),
            ("POST", f"/wallets/{wid}/debit", '{"amount":1000}', 400),
            ("GET", f"/wallets/{wid}", None, 200),
            ("POST", "/wallets", f'{{"walletId":"{wid}","ownerId":"o"}}', 409),
            ("POST", f"/wallets/{wid}/transfer", f'{{"toWalletId":"{peer}","amount":2}}', 201),
            ("GET", "/ledger/health", None, 200),
            ("FOO", "/health", None, 405),
            ("GET", f"/wallets/{wid}", None, 200),
        ]
        data = b"".join(build_request(m, p, b, headers={"X-Correlation-Id": f"pipe-{i}"})
                        for i, (m, p, b, _) in enumerate(requests))
        return requests, data, peer

    def check_in_order(self, requests, replies, wid, peer):
        self.assertEqual(len(replies), len(requests))
        for i, ((method, path, _, status), (got, headers, raw)) in enumerate(
                zip(requests, replies)):
            self.assertEqual(headers.get("x-correlation-id"), f"pipe-{i}", (method, path))
            self.assertEqual(got, status, (i, method, path, raw))
        self.assertEqual(sup.loads(replies[6][2])["version"], 2)    # after the credit
        self.assertEqual(sup.loads(replies[11][2])["version"], 3)   # after the transfer
        self.assert_wallet(wid, "103", 3)
        self.assert_wallet(peer, "2", 1)

    def test_pipelined_requests_are_answered_in_order(self):
        wid = self.new_target()
        requests, data, peer = self.pipeline(wid)
        with self.server.raw_socket(timeout=10) as sock:
            sock.sendall(data)
            f = sock.makefile("rb")
            replies = [read_response(f) for _ in requests]
        self.check_in_order(requests, replies, wid, peer)
        self.assert_served()

    def test_pipelined_requests_split_at_every_seventh_byte(self):
        wid = self.new_target()
        requests, data, peer = self.pipeline(wid)
        with self.server.raw_socket(timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            f = sock.makefile("rb")
            for i in range(0, len(data), 7):
                sock.sendall(data[i:i + 7])
            replies = [read_response(f) for _ in requests]
        self.check_in_order(requests, replies, wid, peer)
        self.assert_served()

    def test_a_malformed_request_ends_the_pipeline(self):
        wid = self.new_target()
        data = (build_request("GET", "/health")
                + build_request("POST", f"/wallets/{wid}/credit", '{"amount":1}')
                + b"NOT HTTP AT ALL\r\n\r\n"
                + build_request("POST", f"/wallets/{wid}/credit", '{"amount":1}'))
        ex = self.exchange(data)
        self.assertEqual([r.status for r in ex.replies], [200, 201, 400], ex)
        self.assert_error(ex.replies[2], 400, "MALFORMED_REQUEST")
        self.assertTrue(ex.closed, ex)
        self.assert_wallet(wid, "101", 2)   # the request after the garbage was never read
        self.assert_served()

    def test_an_oversized_body_ends_the_pipeline(self):
        wid = self.new_target()
        big = b'{"amount":1,"description":"' + b"x" * BODY_BYTES_MAX + b'"}'
        data = (build_request("POST", f"/wallets/{wid}/credit", '{"amount":1}')
                + build_request("POST", f"/wallets/{wid}/credit", big)
                + build_request("POST", f"/wallets/{wid}/credit", '{"amount":1}'))
        ex = self.exchange(data)
        self.assertEqual([r.status for r in ex.replies], [201, 413], ex)
        self.assert_error(ex.replies[1], 413, "PAYLOAD_TOO_LARGE")
        self.assertTrue(ex.closed, ex)
        self.assert_wallet(wid, "101", 2)
        self.assert_served()


# ====================================================================== slow and idle clients

class SlowClientTests(HostileTestCase):
    """Read and write timeouts of 1 s: a client that is too slow is disconnected without an
    answer (docs/http-api.md, Limits), and everyone else is served meanwhile."""

    def dribble(self, sock, data, interval_s, serve_others=True):
        """Sends `data` a byte at a time every `interval_s` until the server closes the
        connection; returns (seconds until the close, bytes received, bytes sent)."""
        started = time.monotonic()
        received = b""
        sent = 0
        while time.monotonic() - started < READ_TIMEOUT_MS / 1000 + SLACK_S:
            if sent < len(data):
                try:
                    sock.sendall(data[sent:sent + 1])
                    sent += 1
                except OSError:
                    return time.monotonic() - started, received, sent
            readable, _, _ = select.select([sock], [], [], interval_s)
            if readable:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    return time.monotonic() - started, received, sent
                if not chunk:
                    return time.monotonic() - started, received, sent
                received += chunk
            if serve_others:
                self.assertEqual(self.get("/health").status, 200)
        self.fail(f"the server did not time out a slow client ({sent} bytes sent)")

    def assert_timed_out(self, elapsed, received, sent, total):
        timeout_s = READ_TIMEOUT_MS / 1000
        self.assertEqual(received, b"", "a timed-out request must get no response")
        self.assertLess(sent, total, "the whole request was sent: nothing was slow")
        self.assertGreaterEqual(elapsed, timeout_s * 0.9)
        self.assertLess(elapsed, timeout_s + SLACK_S)

    def test_slow_headers_are_timed_out(self):
        data = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 200 + b"\r\n\r\n"
        with self.server.raw_socket(timeout=10) as sock:
            sock.sendall(data[:20])  # the request line starts at once, then a byte every 100 ms
            elapsed, received, sent = self.dribble(sock, data[20:], 0.1)
        self.assert_timed_out(elapsed, received, sent + 20, len(data))
        self.assert_served()

    def test_slow_body_is_timed_out_and_has_no_effect(self):
        wid = self.new_target()
        body = b'{"amount":1,"description":"slow"}'
        head = (f"POST /wallets/{wid}/credit HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with self.server.raw_socket(timeout=10) as sock:
            sock.sendall(head)
            elapsed, received, sent = self.dribble(sock, body, 0.1)
        self.assert_timed_out(elapsed, received, sent, len(body))
        self.assert_wallet(wid, "100", 1)
        self.assert_served()

    def test_a_body_shorter_than_its_length_is_timed_out(self):
        wid = self.new_target()
        data = (f"POST /wallets/{wid}/credit HTTP/1.1\r\nHost: x\r\n"
                f"Content-Length: 50\r\n\r\n{{\"amount\":1}}").encode()
        with self.server.raw_socket(timeout=10) as sock:
            sock.sendall(data)
            elapsed, received, _ = self.dribble(sock, b"", 0.1)
        self.assert_timed_out(elapsed, received, 0, 1)
        self.assert_wallet(wid, "100", 1)
        self.assert_served()

    def test_idle_connections_are_closed_after_the_read_timeout(self):
        with self.server.raw_socket(timeout=10) as sock:   # never sends a byte
            elapsed, received, _ = self.dribble(sock, b"", 0.1)
        self.assert_timed_out(elapsed, received, 0, 1)
        with self.server.raw_socket(timeout=10) as sock:   # idle after one keep-alive request
            sock.sendall(build_request("GET", "/health"))
            status, _, _ = read_response(sock.makefile("rb"))
            self.assertEqual(status, 200)
            elapsed, received, _ = self.dribble(sock, b"", 0.1)
        self.assert_timed_out(elapsed, received, 0, 1)
        self.assert_served()

    def test_a_slow_request_within_the_timeout_is_served(self):
        data = build_request("GET", "/ledger/health", headers={"Connection": "close"})
        interval = (READ_TIMEOUT_MS / 1000) * 0.4 / len(data)
        with self.server.raw_socket(timeout=10) as sock:
            for i in range(len(data)):
                sock.sendall(data[i:i + 1])
                time.sleep(interval)
            status, _, body = read_response(sock.makefile("rb"))
        self.assertEqual(status, 200)
        self.assertEqual(sup.loads(body), {"status": "ok", "module": "ledger"})
        self.assert_served()

    def test_a_client_that_never_reads_is_cut_off(self):
        # Thousands of pipelined requests with 4 KB answers, and no read: the server's writes
        # stall once the socket buffers are full, and the write timeout closes the connection.
        path = "/" + "n" * 4000
        request = build_request("GET", path)
        count = 5000
        sock = self.server.raw_socket(timeout=30)
        outcome = {}

        def flood():
            try:
                for start in range(0, count, 100):
                    sock.sendall(request * 100)
                outcome["result"] = "all sent"
            except OSError as e:
                outcome["result"] = e

        started = time.monotonic()
        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        while sender.is_alive() and time.monotonic() - started < 25:
            self.assertEqual(self.get("/health").status, 200)  # others are served meanwhile
            time.sleep(0.2)
        sender.join(timeout=1)
        sock.close()
        self.assertFalse(sender.is_alive(), "the server never cut off a client that does not read")
        self.assertIsInstance(outcome.get("result"), (ConnectionResetError, BrokenPipeError),
                              outcome)
        self.assert_served()


# ====================================================================== many connections

IDLE_CONNECTIONS = 2000
HEADROOM = 10


class ConnectionFloodTests(HostileTestCase):
    """2,000 idle connections, then the connection limit: one more gets 503 and is closed."""

    # Connections stay open as long as the test needs them (the default 30 s read timeout).
    limit = None
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        # This process holds every connection too; both need a few more descriptors than that.
        available = raise_open_file_limit(IDLE_CONNECTIONS + HEADROOM + 200)
        cls.idle = max(100, min(IDLE_CONNECTIONS, available - HEADROOM - 200))
        cls.limit = cls.idle + HEADROOM
        cls.extra_args = ("--connections-max", str(cls.limit))
        super().setUpClass()

    def open_connections(self, n):
        return [self.server.raw_socket(timeout=10) for _ in range(n)]

    def assert_refused(self):
        ex = self.exchange(build_request("GET", "/health"))
        self.assertEqual(len(ex.replies), 1, ex)
        r = ex.replies[0]
        self.assert_error(r, 503, "OVERLOADED", "Too many open connections")
        self.assertEqual(r.headers.get("retry-after"), "1")
        self.assertEqual(r.headers.get("connection", "").lower(), "close")
        self.assertTrue(ex.closed, ex)

    def test_thousands_of_idle_connections_and_the_limit(self):
        idle = self.open_connections(self.idle)
        try:
            self.assert_served()   # served on top of the idle ones
            # The oldest idle connection was accepted and still works.
            idle[0].sendall(build_request("GET", "/ledger/health"))
            status, _, body = read_response(idle[0].makefile("rb"))
            self.assertEqual(status, 200, body)
            idle += self.open_connections(HEADROOM)   # now exactly at the limit
            time.sleep(0.3)  # lets the server see the close of assert_served's connections
            for _ in range(3):
                self.assert_refused()
            # Nothing was accepted beyond the limit: every idle connection is silent.
            readable, _, _ = select.select(idle[:1000], [], [], 0)
            self.assertEqual(readable, [])
            for sock in idle[:HEADROOM * 5]:
                sock.close()
            del idle[:HEADROOM * 5]
            time.sleep(0.3)
            self.assert_served()
        finally:
            for sock in idle:
                sock.close()
        time.sleep(0.3)
        self.assert_served()


class FileLimitTests(HostileTestCase):
    """A server whose open file limit is far below --connections-max: the connections that do
    not fit get 503 like any connection over the limit, instead of accept() failing in a loop."""

    FILES = 256
    command_prefix = ("prlimit", f"--nofile={FILES}:{FILES}", "--")
    extra_args = ()   # the default --connections-max of 10,000

    def test_connections_beyond_the_file_limit_get_503(self):
        raise_open_file_limit(1024)
        fit = self.FILES - 64   # the server keeps 64 descriptors for itself
        time.sleep(0.3)         # lets the server see the close of setUpClass's connections
        socks = [self.server.raw_socket(timeout=10) for _ in range(self.FILES + 44)]
        try:
            time.sleep(0.5)
            readable, _, _ = select.select(socks, [], [], 0)
            refused = 0
            for sock in readable:
                status, headers, raw = read_response(sock.makefile("rb"))
                reply = sup.Reply(status, headers, raw)
                self.assert_error(reply, 503, "OVERLOADED", "Too many open connections")
                refused += 1
            self.assertEqual(refused, len(socks) - fit)
            self.assertEqual(len(socks) - len(readable), fit)
        finally:
            for sock in socks:
                sock.close()
        time.sleep(0.3)
        self.assert_served()
        log = self.server.stderr_tail(200000)
        self.assertIn(f"the open file limit allows {fit} connections, not 10000", log)
        self.assertNotIn("accept failed", log)


if __name__ == "__main__":
    import unittest
    unittest.main()
