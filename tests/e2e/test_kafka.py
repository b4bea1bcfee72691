"""The Kafka relay end to end: `wallex dev-kafka` (librdkafka's mock cluster, a separate process
on real sockets), `wallex serve --kafka-brokers`, a mixed workload over HTTP, and kcat as an
independent consumer of `wallet-events`.

Checked for every event of the log: it is on the topic at least once, on the partition of its
wallet (murmur2 of the key, as the Java client computes it), in version order per wallet, with
the key, value and headers of docs/kafka-format.md. A broker outage (all brokers down through
dev-kafka's stdin) does not fail a single command; the backlog is reported and drains in order.
"""

import json
import os
import queue
import re
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor

from e2e_support import BIN
from wallex_server import WallexServer, loads

BOOTSTRAP_RE = re.compile(r"^127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+)*$")
VALUE_KEYS = ["id", "position", "aggregateId", "eventType", "eventVersion", "payload", "metadata",
              "createdAt"]
PARTITIONS = 10


def murmur2(data):
    """Kafka's murmur2 (the Java client's default partitioner for keyed messages)."""
    length = len(data)
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    h = (seed ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = data[length - rest:]
    if rest == 3:
        h ^= tail[2] << 16
    if rest >= 2:
        h ^= tail[1] << 8
    if rest >= 1:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_of(key):
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class DevKafka:
    """`wallex dev-kafka`: reads the bootstrap line, sends stdin commands, stops with SIGTERM."""

    def __init__(self, brokers=3):
        self.stderr = open(os.devnull, "wb")
        self.proc = subprocess.Popen([BIN, "dev-kafka", "--brokers", str(brokers)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.bootstrap = self._line(15)
        if not BOOTSTRAP_RE.match(self.bootstrap):
            raise AssertionError(f"dev-kafka printed {self.bootstrap!r}, not a bootstrap list")
        self.brokers = brokers

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().rstrip("\n"))

    def _line(self, timeout_s):
        try:
            return self.lines.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError("dev-kafka did not answer") from None

    def command(self, text):
        self.proc.stdin.write((text + "\n").encode())
        self.proc.stdin.flush()
        answer = self._line(10)
        if answer != "ok":
            raise AssertionError(f"dev-kafka {text!r}: {answer}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=20)
        self.stderr.close()
        if rc != 0:
            raise AssertionError(f"dev-kafka exited with {rc}")


def kcat_messages(bootstrap):
    """Every message of wallet-events, read from the beginning by kcat."""
    done = subprocess.run(
        ["kcat", "-C", "-b", bootstrap, "-t", "wallet-events", "-o", "beginning", "-e", "-q",
         "-f", "%p\t%o\t%k\t%h\t%s\n"],
        capture_output=True, timeout=120, check=False)
    if done.returncode != 0:
        raise AssertionError(f"kcat failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    messages = []
    for line in done.stdout.decode().splitlines():
        partition, offset, key, headers, value = line.split("\t", 4)
        header_map = {}
        for pair in headers.split(","):
            name, _, text = pair.partition("=")
            if name in header_map:
                raise AssertionError(f"header {name} twice in {headers}")
            header_map[name] = text
        messages.append({"partition": int(partition), "offset": int(offset), "key": key,
                         "headers": header_map, "value": value})
    return messages


class KafkaCase(unittest.TestCase):
    """One dev-kafka and one server per class."""

    maxDiff = None
    server_args = ()
    server_relays = True  # False: the server runs without --kafka-brokers

    @classmethod
    def setUpClass(cls):
        cls.kafka = DevKafka(brokers=3)
        kafka_args = ("--kafka-brokers", cls.kafka.bootstrap) if cls.server_relays else ()
        cls.server = WallexServer(BIN, extra_args=(*kafka_args, *cls.server_args))
        cls.wallets = []

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop()
        finally:
            cls.server.cleanup()
            cls.kafka.stop()

    # ------------------------------------------------------------------ HTTP

    def call(self, method, path, body=None, key=None, correlation=None, server=None):
        headers = {"Content-Type": "application/json",
                   "X-Correlation-Id": correlation or f"corr-{uuid.uuid4().hex}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        data = json.dumps(body) if body is not None else None
        status, _, raw = (server or self.server).request(method, path, data, headers)
        return status, (loads(raw) if raw else None)

    def stats(self, server=None):
        status, body = self.call("GET", "/health/kafka/stats", server=server)
        self.assertEqual(status, 200, body)
        return body

    def last_position(self):
        status, body = self.call("GET", "/health")
        self.assertEqual(status, 200, body)
        return body["store"]["lastPosition"]

    def workload(self, wallet_count, rounds, threads=8):
        """Creates wallets and runs credits, debits (some refused), transfers and idempotent
        replays from several threads. Asserts every reply is the expected one."""
        prefix = uuid.uuid4().hex[:8]
        new = [f"k-{prefix}-{i}" for i in range(wallet_count)]
        for i, wallet in enumerate(new):
            body = {"walletId": wallet, "ownerId": f"owner-{i % 3}"}
            if i % 2 == 0:
                body["initialBalance"] = "100.00"
            status, reply = self.call("POST", "/wallets", body, key=f"create-{wallet}")
            self.assertEqual(status, 201, reply)
        self.wallets.extend(new)

        def one(n):
            wallet = new[n % len(new)]
            other = new[(n * 7 + 3) % len(new)]
            kind = n % 5
            if kind == 0:
                status, reply = self.call("POST", f"/wallets/{wallet}/credit",
                                          {"amount": "1.25", "description": f"credit {n}"},
                                          key=f"op-{prefix}-{n}")
                # Its replay (kind 3, three requests later) may overtake it on another thread.
                self.assertIn(status, (201, 409), reply)
                if status == 409:
                    self.assertEqual(reply["code"], "IDEMPOTENCY_REQUEST_IN_FLIGHT")
            elif kind == 1:
                status, reply = self.call("POST", f"/wallets/{wallet}/debit", {"amount": "0.50"})
                self.assertIn(status, (201, 400), reply)
                if status == 400:
                    self.assertEqual(reply["code"], "INSUFFICIENT_FUNDS")
            elif kind == 2 and other != wallet:
                status, reply = self.call("POST", f"/wallets/{wallet}/transfer",
                                          {"toWalletId": other, "amount": "0.75"},
                                          key=f"op-{prefix}-{n}")
                self.assertIn(status, (201, 400), reply)
            elif kind == 3:
                # A replay of an earlier keyed credit: the original reply, no new event.
                earlier = n - 3
                if earlier >= 0:
                    status, reply = self.call(
                        "POST", f"/wallets/{new[earlier % len(new)]}/credit",
                        {"amount": "1.25", "description": f"credit {earlier}"},
                        key=f"op-{prefix}-{earlier}")
                    self.assertIn(status, (201, 409), reply)
            else:
                status, reply = self.call("POST", f"/wallets/{wallet}/debit",
                                          {"amount": "1000000.00"})
                self.assertEqual(status, 400, reply)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, range(rounds)))

    def wait_published(self, timeout_s=60):
        head = self.last_position()
        return wait_until(lambda: (lambda s: s if s["publishedPosition"] >= head and
                                   s["backlog"] == 0 else None)(self.stats()),
                          timeout_s, f"the relay to publish up to {head}")

    # ------------------------------------------------------------------ the check

    def log_events(self, head):
        """Each wallet's events from the read side's copy of the log, at least up to `head`."""
        events = {}
        for wallet in self.wallets:
            status, body = self.call("GET", f"/wallets/{wallet}/events?limit=1000&minPosition={head}")
            self.assertEqual(status, 200, body)
            events[wallet] = body["events"]
        return events

    def assert_topic_holds_the_log(self):
        """Every event on its wallet's partition, at least once, in version order, exact."""
        head = self.last_position()
        expected = self.log_events(head)
        by_position = {}
        for wallet, events in expected.items():
            for event in events:
                by_position[event["position"]] = (wallet, event)
        self.assertEqual(sorted(by_position), list(range(1, head + 1)),
                         "the wallets' events must cover the whole log")

        messages = kcat_messages(self.kafka.bootstrap)
        seen = {}
        partitions = {}
        sequence = {}  # wallet -> positions in the order of its partition's offsets
        for message in sorted(messages, key=lambda m: (m["partition"], m["offset"])):
            value = loads(message["value"])
            self.assertEqual(list(value.keys()), VALUE_KEYS, message)
            position = value["position"]
            self.assertIn(position, by_position, f"a message for an unknown position: {message}")
            wallet, event = by_position[position]
            self.assertEqual(message["key"], wallet)
            self.assertEqual(message["partition"], partition_of(wallet),
                             f"{wallet} is not on its murmur2 partition")
            partitions.setdefault(wallet, set()).add(message["partition"])
            self.assertEqual(value["id"], "00000000-0000-8000-8000-%012x" % position)
            self.assertEqual(value["aggregateId"], wallet)
            self.assertEqual(value["eventType"], event["type"])
            self.assertEqual(value["eventVersion"], event["version"])
            self.assertEqual(value["payload"], event["data"])
            self.assertEqual(value["metadata"], {**event["metadata"], "position": position})
            self.assertEqual(value["createdAt"], event["occurredAt"])
            headers = {"event-type": event["type"], "aggregate-id": wallet,
                       "position": str(position),
                       "correlation-id": event["metadata"]["correlationId"]}
            if event["metadata"]["causationId"] is not None:
                headers["causation-id"] = event["metadata"]["causationId"]
            self.assertEqual(message["headers"], headers)
            seen[position] = seen.get(position, 0) + 1
            sequence.setdefault(wallet, []).append(event["version"])

        missing = sorted(set(by_position) - set(seen))
        self.assertEqual(missing, [], f"{len(missing)} events never reached Kafka")
        for wallet, parts in partitions.items():
            self.assertEqual(len(parts), 1, f"{wallet} spread over partitions {parts}")
        for wallet, versions in sequence.items():
            first = []
            for version in versions:
                if version not in first:
                    first.append(version)
            self.assertEqual(first, list(range(len(expected[wallet]))),
                             f"{wallet}: versions out of order on its partition: {versions}")
        return {"events": head, "messages": len(messages),
                "duplicates": sum(seen.values()) - len(seen)}


class RelayTests(KafkaCase):

    def test_every_event_reaches_its_partition_in_version_order(self):
        self.workload(wallet_count=40, rounds=600)
        stats = self.wait_published()
        self.assertEqual(stats["status"], "publishing")
        self.assertEqual(stats["deliveryErrors"], 0)
        self.assertEqual(stats["inFlight"], 0)
        result = self.assert_topic_holds_the_log()
        self.assertGreater(result["events"], 400)
        # No outage, no failed delivery: nothing may have been sent twice.
        self.assertEqual(result["duplicates"], 0, result)
        print(f"\n  relay: {result}", flush=True)

    def test_health_kafka_asks_the_cluster(self):
        status, body = self.call("GET", "/health/kafka")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "ok")
        self.assertEqual(body["brokers"], 3)
        status, body = self.call("GET", "/health")
        self.assertEqual(status, 200, body)
        self.assertIn("kafka", body)
        self.assertEqual(body["kafka"]["relay"], "publishing")

    def test_a_second_relay_of_the_same_store_does_not_publish(self):
        # The server relays. Embedded store: a second relay of its data directory is refused
        # (relay.lock). PostgreSQL: a second relay of its database waits as a standby for the
        # relay lease, which the server keeps.
        store = (["--store", self.server.store_url] if self.server.store_url
                 else ["--data-dir", self.server.data_dir])
        second = subprocess.Popen(
            [BIN, "relay", *store, "--kafka-brokers", self.kafka.bootstrap],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        try:
            if self.server.store_url:
                time.sleep(2.5)  # more than one lease round
                self.assertIsNone(second.poll(), "the standby relay exited")
                self.assertNotEqual(self.stats()["status"], "standby")
            else:
                _, err = second.communicate(timeout=30)
                self.assertEqual(second.returncode, 1, err)
                self.assertIn("already publishes", err)
        finally:
            if second.poll() is None:
                second.terminate()
                second.communicate(timeout=30)

    def test_a_restart_resumes_from_the_saved_position(self):
        self.workload(wallet_count=10, rounds=100)
        before = self.wait_published()
        self.server.stop()
        self.server.restart()
        # Cleanly stopped: the saved position is the published one, nothing is sent again.
        self.assertEqual(self.stats()["publishedPosition"], before["publishedPosition"])
        self.workload(wallet_count=5, rounds=50)
        self.wait_published()
        result = self.assert_topic_holds_the_log()
        self.assertEqual(result["duplicates"], 0, result)


class RelayCrashTests(KafkaCase):

    def test_after_kill_9_nothing_is_lost(self):
        self.workload(wallet_count=10, rounds=100)
        self.wait_published()
        self.workload(wallet_count=10, rounds=300)
        # Killed while the relay is publishing and before its next save: the saved position is
        # behind what Kafka has, so the restart sends some events again (never fewer).
        self.server.kill9()
        self.server.restart()
        self.workload(wallet_count=5, rounds=50)
        stats = self.wait_published()
        self.assertEqual(stats["deliveryErrors"], 0, stats)
        result = self.assert_topic_holds_the_log()
        self.assertGreaterEqual(result["messages"], result["events"])
        print(f"\n  kill -9: {result}", flush=True)


class BrokerOutageTests(KafkaCase):
    # A small producer window, so the outage backlog is mostly still in the log and the drain
    # reads it from there.
    server_args = ("--kafka-in-flight-max", "100")

    def test_commands_go_on_and_the_backlog_drains_in_order(self):
        self.workload(wallet_count=20, rounds=200)
        self.wait_published()
        for broker in range(1, self.kafka.brokers + 1):
            self.kafka.command(f"down {broker}")
        try:
            status, body = self.call("GET", "/health/kafka")
            self.assertEqual(status, 503, body)
            self.assertEqual(body["status"], "unavailable")

            started = time.monotonic()
            rounds = 0
            # An outage of a few seconds and well over --kafka-in-flight-max events, even on a
            # slow (sanitizer) build.
            while rounds < 2 or time.monotonic() - started < 3.0:
                self.workload(wallet_count=10, rounds=200)  # asserts every reply
                rounds += 1
            elapsed = time.monotonic() - started
            head = self.last_position()
            time.sleep(1.2)
            stats = self.stats()
            self.assertLess(stats["publishedPosition"], head, stats)
            self.assertEqual(stats["backlog"], head - stats["publishedPosition"], stats)
            self.assertGreater(stats["backlog"], 300, stats)
            self.assertEqual(stats["inFlight"], 100, stats)
            self.assertGreater(float(stats["oldestUnpublishedAgeSeconds"]), 1.0, stats)
            backlog = stats["backlog"]
        finally:
            for broker in range(1, self.kafka.brokers + 1):
                self.kafka.command(f"up {broker}")
        started = time.monotonic()
        self.wait_published(timeout_s=90)
        drained = time.monotonic() - started
        status, body = self.call("GET", "/health/kafka")
        self.assertEqual(status, 200, body)
        result = self.assert_topic_holds_the_log()
        print(f"\n  outage: workload {elapsed:.1f}s with brokers down, backlog {backlog} drained in "
              f"{drained:.1f}s; {result}", flush=True)


class StandaloneRelayTests(KafkaCase):
    server_relays = False

    def test_wallex_relay_publishes_a_live_servers_log(self):
        self.workload(wallet_count=10, rounds=150)
        head = self.last_position()
        # On PostgreSQL (WALLEX_E2E_STORE=postgresql) the relay follows the server's database.
        store = (["--store", self.server.store_url] if self.server.store_url
                 else ["--data-dir", self.server.data_dir])
        relay = subprocess.Popen(
            [BIN, "relay", *store, "--kafka-brokers", self.kafka.bootstrap],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: len(kcat_messages(self.kafka.bootstrap)) >= head, 60,
                       f"{head} messages on wallet-events")
            # More commands while it runs: it follows the log by polling.
            self.workload(wallet_count=5, rounds=50)
            head = self.last_position()
            wait_until(lambda: len(kcat_messages(self.kafka.bootstrap)) >= head, 60,
                       f"{head} messages on wallet-events")
        finally:
            relay.send_signal(signal.SIGTERM)
            rc = relay.wait(timeout=20)
        self.assertEqual(rc, 0)
        result = self.assert_topic_holds_the_log()
        self.assertEqual(result["duplicates"], 0, result)


class KafkaDisabledTests(unittest.TestCase):

    def test_kafka_health_says_disabled(self):
        server = WallexServer(BIN)
        try:
            for path in ("/health/kafka", "/health/kafka/stats"):
                status, _, raw = server.request("GET", path)
                self.assertEqual((status, loads(raw)), (200, {"status": "disabled"}), path)
            status, _, raw = server.request("GET", "/health")
            self.assertNotIn("kafka", loads(raw))
            status, _, raw = server.request("POST", "/health/kafka", "{}")
            self.assertEqual(status, 405)
        finally:
            server.stop()
            server.cleanup()

    def test_a_bad_kafka_property_is_a_usage_error(self):
        for bad in ("no.such.property=1", "missing-equals-sign"):
            with tempfile.TemporaryDirectory() as data_dir:
                done = subprocess.run(
                    [BIN, "serve", "--port", "0", "--data-dir", data_dir,
                     "--kafka-brokers", "127.0.0.1:1", "--kafka-config", bad],
                    capture_output=True, timeout=30, check=False)
            self.assertEqual(done.returncode, 2, done.stderr.decode())
            self.assertIn("kafka", done.stderr.decode().lower())


if __name__ == "__main__":
    unittest.main()
