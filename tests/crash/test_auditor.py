"""The crash tests' auditor must be able to fail: fed replies that show a lost, a doubled or a
half-applied operation, it reports each. No server needed."""

import json
import unittest

import crash_support as cs


def op(key, kind, wallet, cents, reply, to=None):
    o = cs.Op(key, kind, wallet, to, cents, "/", b"{}", 0)
    o.record(201, {}, json.dumps(reply).encode(), "acked")
    return o


def snap(wallet, balance, version):
    return {"id": wallet, "ownerId": "o", "balance": balance, "version": version,
            "createdAt": "t", "updatedAt": "t"}


def history():
    """a: created with 10.00, credited 5.00; b: created empty; a → b 3.00."""
    return [
        op("k1", "create", "a", 1000, snap("a", 10, 1)),
        op("k2", "create", "b", 0, snap("b", 0, 0)),
        op("k3", "credit", "a", 500, snap("a", 15, 2)),
        op("k4", "transfer", "a", 300,
           {"fromWallet": snap("a", 12, 3), "toWallet": snap("b", 3, 1), "transferId": "t"}, to="b"),
    ]


class AuditorTest(unittest.TestCase):

    def test_a_consistent_history_passes(self):
        expected, problems = cs.audit(history())
        self.assertEqual(problems, [])
        self.assertEqual(expected, {"a": (1200, 3), "b": (300, 1)})

    def test_a_lost_operation_leaves_a_version_nobody_claims(self):
        ops = history()
        del ops[2]  # the credit's reply never existed, yet a later reply is at version 3
        _, problems = cs.audit(ops)
        self.assertTrue(any("belong to no acknowledged request" in p for p in problems), problems)

    def test_a_doubled_operation_claims_a_version_twice(self):
        ops = history()
        ops.append(op("k5", "credit", "a", 500, snap("a", 15, 2)))
        _, problems = cs.audit(ops)
        self.assertTrue(any("claimed by k3 and k5" in p for p in problems), problems)

    def test_a_balance_that_does_not_follow_from_the_amounts_is_reported(self):
        ops = history()
        ops[2] = op("k3", "credit", "a", 400, snap("a", 15, 2))  # asked 4.00, applied 5.00
        _, problems = cs.audit(ops)
        self.assertTrue(any("a v2 (k3)" in p for p in problems), problems)

    def test_half_a_transfer_breaks_the_other_wallets_chain(self):
        ops = history()
        ops[3] = op("k4", "transfer", "a", 300,
                    {"fromWallet": snap("a", 12, 3), "toWallet": snap("b", 0, 1),
                     "transferId": "t"}, to="b")
        _, problems = cs.audit(ops)
        self.assertTrue(any(p.startswith("b v1") for p in problems), problems)

    def test_an_operation_without_a_definitive_reply_is_reported(self):
        ops = history()
        ops.append(cs.Op("k9", "credit", "a", None, 1, "/", b"{}", 0))
        _, problems = cs.audit(ops)
        self.assertIn("k9 has no definitive reply", problems)


if __name__ == "__main__":
    unittest.main()
