"""The Kafka relay on PostgreSQL (issue 7): two `wallex serve --kafka-brokers` instances on one
database and one `wallex dev-kafka` cluster. Only the holder of the relay lease publishes (the
other reports "standby", sampled all along); the holder is killed with SIGKILL mid-run and the
other takes over from the shared published position; afterwards every event of the log is on
the topic, on its wallet's partition, in version order (duplicates only by position).

Needs WALLEX_PG_URL (scripts/with-pg.sh) and kcat; fails without them.
"""

import threading
import time
import unittest

from e2e_support import BIN
from test_kafka import DevKafka, KafkaCase, wait_until
from wallex_server import WallexServer, create_database, drop_database


class PgRelayLeaseTests(KafkaCase):

    @classmethod
    def setUpClass(cls):
        cls.kafka = DevKafka(brokers=3)
        cls.url = create_database(BIN)
        cls.servers = [
            WallexServer(BIN, store_url=cls.url,
                         extra_args=("--kafka-brokers", cls.kafka.bootstrap,
                                     "--instance-name", f"relay-{n}"))
            for n in range(2)]
        cls.server = cls.servers[0]
        cls.wallets = []

    @classmethod
    def tearDownClass(cls):
        try:
            for server in cls.servers:
                if server.is_running():
                    server.stop()
        finally:
            for server in cls.servers:
                server.cleanup()
            drop_database(cls.url)
            cls.kafka.stop()

    def states(self):
        # Called from the sampler thread while the test thread switches self.server between
        # the instances: the server is passed, never swapped into self.server (a swap here
        # once put the test's own requests back on the instance it had just killed).
        out = {}
        for server in self.servers:
            if server.is_running():
                out[server.extra_args[3]] = self.stats(server)["status"]
        return out

    def relaying(self):
        states = self.states()
        active = [name for name, state in states.items() if state != "standby"]
        return active[0] if len(active) == 1 else None

    def test_one_relay_at_a_time_and_failover_loses_nothing(self):
        first = wait_until(self.relaying, 20, "exactly one relaying instance")
        holder = next(s for s in self.servers if s.extra_args[3] == first)
        other = next(s for s in self.servers if s is not holder)
        # The standby does not publish, but its GET /health/kafka is still a real metadata
        # request to the cluster (its own client).
        self.server = other
        status, body = self.call("GET", "/health/kafka")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["status"], "ok", body)
        self.assertGreater(body["brokers"], 0, body)

        sampled = []
        stop_sampling = threading.Event()

        def sample():
            while not stop_sampling.is_set():
                try:
                    sampled.append(self.states())
                except (AssertionError, OSError):
                    pass  # a server being killed
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            self.server = other
            self.workload(wallet_count=12, rounds=150)
            self.server = holder
            self.workload(wallet_count=12, rounds=150)
            self.wait_published()
            holder.kill9()
            self.server = other
            self.workload(wallet_count=12, rounds=150)
            wait_until(lambda: self.relaying() == other.extra_args[3], 20,
                       "the survivor to take the relay lease over")
            self.wait_published()
        finally:
            stop_sampling.set()
            sampler.join()
        both = [s for s in sampled if len(s) == 2 and all(v != "standby" for v in s.values())]
        self.assertEqual(both, [], "two instances relayed at once")
        self.assertGreater(len(sampled), 10)
        result = self.assert_topic_holds_the_log()
        print(f"\npg relay: {result}; lease {first} -> {other.extra_args[3]}", flush=True)


if __name__ == "__main__":
    unittest.main()
