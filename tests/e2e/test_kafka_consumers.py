"""The consumer-group projectors end to end: `wallex dev-kafka` (librdkafka's mock cluster, a
separate process on real sockets), `wallex serve --kafka-brokers` publishing a mixed workload,
and `wallex project --source kafka` processes reading wallet-events in consumer groups into read
stores of their own.

Checked:
- two members of ledger-projector, one SIGKILLed while events are still arriving: the survivor
  takes over its partitions, and `wallex verify --compare-read-db` finds the Kafka-built ledger
  equal to the in-process one, row by row (nothing lost, nothing doubled); the same for a
  read-model-projector member; /health/kafka/stats reports both groups' lag down to 0;
- a poison message on wallet-events goes to wallet-events-dlq after --max-attempts tries, with
  its key, value, original headers and the dlq-* headers (read back with kcat), it is counted in
  dlqCount, and later events of the same partition are still applied.

The mock's group timing (platform notes): a first join waits 3 s, a rebalance takes
session.timeout.ms − 1 s, so the members run with session.timeout.ms=4000 and
heartbeat.interval.ms=300, and the tests wait for assignments and lag, never for fixed times.
"""

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time
import unittest

from e2e_support import BIN
from test_kafka import KafkaCase, partition_of, wait_until
from wallex_server import sanitizer_report

MEMBER_CONFIG = ("--kafka-config", "session.timeout.ms=4000",
                 "--kafka-config", "heartbeat.interval.ms=300")
ASSIGNED_RE = re.compile(r"project [\w-]+: assigned (.*)$", re.M)


class Member:
    """One `wallex project --source kafka` process; its stderr in a file."""

    def __init__(self, directory, name, group, read_db, bootstrap, extra=()):
        self.log_path = os.path.join(directory, f"{name}.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "project", "--source", "kafka", "--group", group, "--read-db", read_db,
             "--kafka-brokers", bootstrap, *MEMBER_CONFIG, *extra],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def assignments(self):
        """Each assignment logged, as the list of partitions it gave this member."""
        out = []
        for line in ASSIGNED_RE.findall(self.text()):
            parts = [] if line.strip() == "nothing" else line.split()
            out.append([int(p.split("@")[0]) for p in parts])
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        finally:
            self.log.close()
        return rc

    def assert_clean(self, case):
        report = sanitizer_report(self.text())
        case.assertIsNone(report, f"sanitizer report in {self.log_path}:\n{report}")


class ConsumerCase(KafkaCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.work = tempfile.mkdtemp(prefix="wallex-consumers-")
        cls.members = []

    @classmethod
    def tearDownClass(cls):
        for member in cls.members:
            if member.proc.poll() is None:
                member.proc.kill()
                member.proc.wait()
            if not member.log.closed:
                member.log.close()
        if cls.failed:
            print(f"\nkept the members' logs and stores in {cls.work}")
        else:
            shutil.rmtree(cls.work, ignore_errors=True)
        super().tearDownClass()

    failed = False

    def run(self, result=None):
        """Notes a failure, so the class keeps its work directory for the post-mortem."""
        result = result if result is not None else self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        outcome = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            type(self).failed = True
        return outcome

    def member(self, name, group, read_db, extra=()):
        m = Member(self.work, name, group, read_db, self.kafka.bootstrap, extra)
        self.members.append(m)
        return m

    def wait_read_side(self, timeout_s=60):
        def caught_up():
            status, body = self.call("GET", "/health")
            if status != 200:
                return None
            head = body["store"]["lastPosition"]
            behind = [p["positionsBehind"] for p in body["projections"].values()]
            return head if all(b == 0 for b in behind) else None
        return wait_until(caught_up, timeout_s, "the in-process projections to catch up")

    def wait_lag_zero(self, group, timeout_s=90):
        head = self.wait_published()["publishedPosition"]

        def drained():
            stats = self.stats()
            lag = stats["consumerGroups"].get(group, {}).get("lag")
            return stats if lag == 0 and stats["publishedPosition"] >= head else None
        return wait_until(drained, timeout_s, f"group {group} to reach lag 0")

    def verify_compare(self, read_db):
        done = subprocess.run([BIN, "verify", "--data-dir", self.server.data_dir,
                               "--compare-read-db", read_db],
                              capture_output=True, timeout=120, check=False)
        return done.returncode, done.stdout.decode() + done.stderr.decode()


class TwoMembersOneKilledTest(ConsumerCase):
    def test_the_kafka_built_ledger_equals_the_in_process_one(self):
        ledger_db = os.path.join(self.work, "ledger-kafka.db")
        model_db = os.path.join(self.work, "model-kafka.db")
        self.workload(wallet_count=24, rounds=240)
        first = self.member("ledger-a", "ledger-projector", ledger_db)
        second = self.member("ledger-b", "ledger-projector", ledger_db)
        model = self.member("model", "read-model-projector", model_db)
        # Both ledger members hold partitions (the second join rebalances the first).
        wait_until(lambda: first.assignments() and first.assignments()[-1] and
                   second.assignments() and second.assignments()[-1] and
                   len(first.assignments()[-1]) + len(second.assignments()[-1]) == 10,
                   60, "both ledger members to share the 10 partitions")
        killed_partitions = first.assignments()[-1]

        # Events keep arriving before, during and after the kill, until the survivor has taken
        # the killed member's partitions over (its session must time out first: ~4 s + 3 s).
        done = threading.Event()
        errors = []

        def keep_writing():
            try:
                while not done.is_set():
                    self.workload(wallet_count=4, rounds=60, threads=2)
                    time.sleep(0.1)
            except Exception as error:  # noqa: BLE001 - reported by the main thread
                errors.append(error)

        more = threading.Thread(target=keep_writing)
        more.start()
        time.sleep(1.0)
        first.proc.send_signal(signal.SIGKILL)
        self.assertEqual(first.proc.wait(timeout=10), -signal.SIGKILL)
        try:
            wait_until(lambda: second.assignments() and len(second.assignments()[-1]) == 10, 60,
                       "the survivor to be assigned all 10 partitions")
            time.sleep(1.0)
        finally:
            done.set()
            more.join(timeout=120)
        self.assertFalse(more.is_alive(), "the workload did not finish")
        self.assertEqual(errors, [])
        takeover = dict(
            (int(p), None if o == "beginning" else int(o))
            for p, o in (part.split("@") for part in
                         ASSIGNED_RE.findall(second.text())[-1].split()))
        stats = self.wait_lag_zero("ledger-projector")
        self.wait_lag_zero("read-model-projector")
        self.assertEqual(stats["dlqCount"], 0, stats)
        self.wait_read_side()
        self.assertEqual(second.stop(), 0, second.text()[-3000:])
        self.assertEqual(model.stop(), 0, model.text()[-3000:])
        first.log.close()
        for m in (first, second, model):
            m.assert_clean(self)

        # The killed member did apply part of the stream before dying (mid-stream, not idle).
        with sqlite3.connect(ledger_db) as db:
            stored = dict(db.execute(
                "SELECT partition_id, next_offset FROM consumer_offsets "
                "WHERE group_id = 'ledger-projector'").fetchall())
            entries = db.execute("SELECT count(*) FROM ledger_entries").fetchone()[0]
            doubled = db.execute("SELECT count(*) FROM (SELECT position FROM ledger_entries "
                                 "GROUP BY position HAVING count(*) > 1)").fetchone()[0]
        self.assertTrue(killed_partitions)
        self.assertTrue(any(stored.get(p, 0) > 0 for p in killed_partitions), stored)
        # ... and died with events of its partitions unread, which the survivor then applied.
        self.assertTrue(any(stored[p] > (takeover[p] or 0) for p in killed_partitions),
                        f"stored {stored}, taken over at {takeover}")
        self.assertGreater(entries, 400)
        self.assertEqual(doubled, 0)

        rc, out = self.verify_compare(ledger_db)
        self.assertEqual(rc, 0, out)
        self.assertIn("compare: OK", out)
        self.assertIn(f"ledger entry at position: {entries} rows on both sides", out)
        rc, out = self.verify_compare(model_db)
        self.assertEqual(rc, 0, out)
        self.assertIn(f"read-model wallet: {len(self.wallets)} rows on both sides", out)

        # And the comparison does catch a difference.
        with sqlite3.connect(ledger_db) as db:
            db.execute("DELETE FROM ledger_entries WHERE position = "
                       "(SELECT max(position) FROM ledger_entries)")
        rc, out = self.verify_compare(ledger_db)
        self.assertEqual(rc, 1, out)
        self.assertIn("only in the reference", out)


class PoisonMessageTest(ConsumerCase):
    def test_a_poison_message_goes_to_the_dlq_and_the_partition_moves_on(self):
        self.workload(wallet_count=6, rounds=30)
        wallet = self.wallets[0]
        partition = partition_of(wallet)
        poison = '{"position":"not a number","aggregateId":"' + wallet + '"}'
        done = subprocess.run(
            ["kcat", "-P", "-b", self.kafka.bootstrap, "-t", "wallet-events", "-K", "\t",
             "-H", "origin=e2e-poison", "-X", "enable.idempotence=true", "-X", "acks=all",
             "-X", "partitioner=murmur2_random"],
            input=f"{wallet}\t{poison}\n".encode(), capture_output=True, timeout=60, check=False)
        self.assertEqual(done.returncode, 0, done.stderr.decode())
        # A valid event of the same wallet, after the poison on the same partition.
        status, reply = self.call("POST", f"/wallets/{wallet}/credit",
                                  {"amount": "7.77", "description": "after the poison"})
        self.assertEqual(status, 201, reply)
        self.wait_published()
        topic = subprocess.run(
            ["kcat", "-C", "-b", self.kafka.bootstrap, "-t", "wallet-events", "-p",
             str(partition), "-o", "beginning", "-e", "-q", "-f", "%o\t%k\t%s\n"],
            capture_output=True, timeout=60, check=True).stdout.decode().splitlines()
        poison_offsets = [int(line.split("\t")[0]) for line in topic
                          if line.split("\t", 2)[2] == poison]
        self.assertEqual(len(poison_offsets), 1, topic)
        credit_after = [line for line in topic if "after the poison" in line]
        self.assertEqual(len(credit_after), 1)
        self.assertGreater(int(credit_after[0].split("\t")[0]), poison_offsets[0])

        read_db = os.path.join(self.work, "poison.db")
        member = self.member("poison", "ledger-projector", read_db, ("--max-attempts", "2"))
        self.wait_lag_zero("ledger-projector")
        stats = wait_until(lambda: (lambda s: s if s["dlqCount"] == 1 else None)(self.stats()),
                           30, "dlqCount 1")
        self.assertEqual(stats["consumerGroups"]["ledger-projector"]["lag"], 0)
        self.assertEqual(member.stop(), 0, member.text()[-3000:])
        member.assert_clean(self)

        letters = subprocess.run(
            ["kcat", "-C", "-b", self.kafka.bootstrap, "-t", "wallet-events-dlq", "-o",
             "beginning", "-e", "-q", "-f", "%k\t%h\t%s\n"],
            capture_output=True, timeout=60, check=True).stdout.decode().splitlines()
        self.assertEqual(len(letters), 1, letters)
        key, headers, value = letters[0].split("\t", 2)
        self.assertEqual(key, wallet)
        self.assertEqual(value, poison)
        pairs = dict(pair.split("=", 1) for pair in headers.split(","))
        self.assertEqual(pairs["origin"], "e2e-poison")
        self.assertIn("undecodable message", pairs["dlq-error"])
        self.assertEqual(pairs["dlq-attempts"], "2")
        self.assertEqual(pairs["dlq-origin-topic"], "wallet-events")
        self.assertEqual(pairs["dlq-origin-partition"], str(partition))
        self.assertEqual(pairs["dlq-origin-offset"], str(poison_offsets[0]))
        self.assertEqual(pairs["dlq-group"], "ledger-projector")

        # The partition moved on: the later credit is in the Kafka-built ledger, the poison is
        # recorded as a dead letter in the same store, and the whole ledger equals read.db.
        with sqlite3.connect(read_db) as db:
            credited = db.execute("SELECT count(*) FROM ledger_entries WHERE wallet_id = ? AND "
                                  "description = 'after the poison'", (wallet,)).fetchone()[0]
            recorded = db.execute("SELECT partition_id, message_offset, attempts "
                                  "FROM consumer_dead_letters").fetchall()
        self.assertEqual(credited, 1)
        self.assertEqual(recorded, [(partition, poison_offsets[0], 2)])
        self.wait_read_side()
        rc, out = self.verify_compare(read_db)
        self.assertEqual(rc, 0, out)


if __name__ == "__main__":
    unittest.main()
