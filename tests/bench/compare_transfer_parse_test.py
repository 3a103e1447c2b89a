#!/usr/bin/env python3
"""Unit test of bench/compare_transfer.py's parsing and table.

Runs on recorded outputs in tests/bench/data/ (standard library only, no Ray):
  python3 tests/bench/compare_transfer_parse_test.py
"""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, "data")
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.join(ROOT, "bench"))

import compare_transfer  # noqa: E402


def read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


class ParseTest(unittest.TestCase):
    def test_lumen_output_gives_its_rate_and_its_tcp(self):
        out = compare_transfer.parse(read("lumen_object_transfer_sample.txt"),
                                     "object_transfer_gbps")
        self.assertEqual(out, {"transfer": 1.076, "tcp": 2.848, "bytes": 1 << 30, "reps": 3})

    def test_ray_output_gives_its_rate_and_its_tcp(self):
        out = compare_transfer.parse(read("ray_object_transfer_sample.txt"),
                                     "ray_object_transfer_gbps")
        self.assertEqual(out, {"transfer": 0.542, "tcp": 2.688, "bytes": 1 << 30, "reps": 3})

    def test_a_missing_output_gives_dashes_not_a_crash(self):
        lumen = compare_transfer.parse(read("lumen_object_transfer_sample.txt"),
                                       "object_transfer_gbps")
        ray = compare_transfer.parse("", "ray_object_transfer_gbps")
        report = compare_transfer.build_report(lumen, ray, "2.60.0")
        self.assertIsNone(report["lumen_over_ray"])
        text = compare_transfer.render_markdown(report)
        self.assertIn("| Ray 2.60.0 | \u2014 | \u2014 | \u2014 | \u2014 | \u2014 |", text)
        self.assertIn("| Lumen | 1073741824 | 3 | 1.076 | 2.848 | 0.38 |", text)


class ReportTest(unittest.TestCase):
    def test_ratios_are_each_over_its_tcp_and_lumen_over_ray(self):
        report = compare_transfer.build_report(
            {"transfer": 2.0, "tcp": 4.0, "bytes": 8, "reps": 1},
            {"transfer": 1.0, "tcp": 5.0, "bytes": 8, "reps": 1}, "2.60.0")
        self.assertAlmostEqual(report["rows"][0]["of_tcp"], 0.5)
        self.assertAlmostEqual(report["rows"][1]["of_tcp"], 0.2)
        self.assertAlmostEqual(report["lumen_over_ray"], 2.0)
        self.assertAlmostEqual(report["lumen_over_ray_tcp_normalized"], 2.5)
        self.assertIn("Lumen ÷ Ray: 2.00 (each ÷ its own run's TCP first: 2.50)",
                      compare_transfer.render_markdown(report))


if __name__ == "__main__":
    unittest.main()
