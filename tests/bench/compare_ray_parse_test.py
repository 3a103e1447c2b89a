#!/usr/bin/env python3
"""Unit test of bench/compare_ray.py's parsing and table building.

Runs on recorded outputs in tests/bench/data/ (standard library only, no Ray):
  python3 tests/bench/compare_ray_parse_test.py
"""

import json
import os
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(HERE, "data")
sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.join(ROOT, "bench"))

import compare_ray  # noqa: E402

DASH = "\u2014"


def read(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


class MetricNameTest(unittest.TestCase):
    def test_ray_names_map_to_metric_names(self):
        cases = {
            "single client get calls (Plasma Store)": "single_client_get_calls_Plasma_Store",
            "single client put gigabytes": "single_client_put_gigabytes",
            "1:1 actor calls sync": "1_1_actor_calls_sync",
            "1:n actor calls async": "1_n_actor_calls_async",
            "n:n actor calls with arg async": "n_n_actor_calls_with_arg_async",
            "single client get object containing 10k refs":
                "single_client_get_object_containing_10k_refs",
            "placement group create/removal": "placement_group_create/removal",
        }
        for ray_name, metric in cases.items():
            self.assertEqual(compare_ray.metric_name(ray_name), metric)

    def test_metric_names_are_unchanged(self):
        for name in compare_ray.BENCHMARKS + compare_ray.BASELINES:
            self.assertEqual(compare_ray.metric_name(name), name)


# Benchmarks added after ray_microbenchmark_sample.txt was recorded.
NEWER_THAN_SAMPLE = {
    "1_1_actor_calls_64KiB_args_async",
    "placement_group_create/removal",
    "multi_client_put_gigabytes",
}


class ParseTest(unittest.TestCase):
    def test_ray_sample(self):
        ray = compare_ray.parse_lines(read("ray_microbenchmark_sample.txt"))
        # Every benchmark Lumen implements is in the recorded Ray run, and nothing else.
        self.assertEqual(
            sorted(ray),
            sorted(b for b in compare_ray.BENCHMARKS if b not in NEWER_THAN_SAMPLE))
        self.assertEqual(
            ray["single_client_get_calls_Plasma_Store"],
            {"mean": 19383.43, "stddev": 351.95},
        )
        self.assertEqual(ray["1_1_actor_calls_sync"], {"mean": 1721.87, "stddev": 59.44})
        self.assertEqual(ray["single_client_tasks_sync"], {"mean": 933.78, "stddev": 40.6})
        self.assertEqual(ray["single_client_put_gigabytes"], {"mean": 1.02, "stddev": 0.53})

    def test_lumen_sample(self):
        lumen = compare_ray.parse_lines(read("lumen_microbenchmark_sample.txt"))
        self.assertIn("baseline_grpc_unary_echo", lumen)
        self.assertEqual(lumen["baseline_memcpy_gigabytes"], {"mean": 9.87, "stddev": 0.12})
        self.assertEqual(lumen["n_n_actor_calls_async"], {"mean": 14186.18, "stddev": 733.9})
        self.assertNotIn("n_n_actor_calls_with_arg_async", lumen)
        self.assertNotIn("single_client_get_object_containing_10k_refs", lumen)
        self.assertEqual(len(lumen), 15)  # 13 benchmarks + 2 baselines

    def test_ray_cpp_sample_ignores_console_noise(self):
        cpp = compare_ray.parse_lines(read("ray_cpp_microbenchmark_sample.txt"))
        self.assertEqual(
            sorted(cpp),
            sorted([
                "single_client_get_calls_Plasma_Store",
                "single_client_put_calls_Plasma_Store",
                "single_client_tasks_and_get_batch",
                "single_client_tasks_sync",
                "single_client_tasks_async",
                "1_1_actor_calls_sync",
                "1_1_actor_calls_async",
                "1_1_actor_calls_concurrent",
            ]),
        )
        self.assertEqual(cpp["single_client_put_calls_Plasma_Store"]["stddev"], 100.0)

    def test_lumen_json_matches_text(self):
        text = compare_ray.parse_lines(read("lumen_microbenchmark_sample.txt"))
        js = compare_ray.parse_json_results(read("lumen_microbenchmark_sample.json"))
        self.assertEqual(len(js), 5)
        for name, value in js.items():
            self.assertEqual(value, text[name])

    def test_other_lines_are_ignored(self):
        text = "\n".join([
            "Tip: set TESTS_TO_RUN='pattern' to run a subset of benchmarks",
            "(pid=123) single client tasks sync per second 1.0 +- 0.1",
            "\x1b[33m(raylet)\x1b[0m 1:1 actor calls sync per second 5 +- 1",
            "single client tasks sync per second not-a-number +- 1",
            "single client tasks sync per second 12",
            "  single_client_tasks_async per second 1e3 +- 2.5  ",
            "multi client put gigabytes per second 41.0 +- 0.0",
        ])
        got = compare_ray.parse_lines(text)
        self.assertEqual(
            got,
            {
                "single_client_tasks_async": {"mean": 1000.0, "stddev": 2.5},
                "multi_client_put_gigabytes": {"mean": 41.0, "stddev": 0.0},
            },
        )


class TableTest(unittest.TestCase):
    def setUp(self):
        self.ray = compare_ray.parse_lines(read("ray_microbenchmark_sample.txt"))
        self.lumen = compare_ray.parse_lines(read("lumen_microbenchmark_sample.txt"))
        self.cpp = compare_ray.parse_lines(read("ray_cpp_microbenchmark_sample.txt"))

    def rows_by_name(self, rows):
        return {r["name"]: r for r in rows}

    def test_rows_follow_ray_order_without_baselines(self):
        rows = compare_ray.build_rows(self.ray, self.lumen)
        self.assertEqual([r["name"] for r in rows], compare_ray.BENCHMARKS)

    def test_large_object_rows_follow_when_either_side_printed_them(self):
        ray = dict(self.ray)
        ray["single_client_get_gigabytes"] = {"mean": 333.0, "stddev": 1.0}
        lumen = dict(self.lumen)
        lumen["single_client_get_gigabytes"] = {"mean": 999.0, "stddev": 2.0}
        lumen["weights_dict_put"] = {"mean": 15.0, "stddev": 1.0}
        rows = compare_ray.build_rows(ray, lumen)
        self.assertEqual(
            [r["name"] for r in rows],
            compare_ray.BENCHMARKS + ["single_client_get_gigabytes", "weights_dict_put"],
        )
        by_name = self.rows_by_name(rows)
        self.assertEqual(by_name["single_client_get_gigabytes"]["unit"], "GB/s")
        self.assertAlmostEqual(
            by_name["single_client_get_gigabytes"]["lumen_over_ray"], 999.0 / 333.0)
        self.assertIsNone(by_name["weights_dict_put"]["ray"])
        self.assertEqual(by_name["weights_dict_put"]["unit"], "ops/s")

    def test_ratio(self):
        rows = self.rows_by_name(compare_ray.build_rows(self.ray, self.lumen))
        self.assertAlmostEqual(
            rows["single_client_tasks_sync"]["lumen_over_ray"], 1867.56 / 933.78)
        self.assertAlmostEqual(
            rows["single_client_get_calls_Plasma_Store"]["lumen_over_ray"],
            48766.86 / 19383.43)
        self.assertEqual(compare_ray.fmt_ratio(2.0), "2.00\u00d7")
        self.assertIsNone(compare_ray.ratio({"mean": 1.0}, {"mean": 0.0}))
        self.assertIsNone(compare_ray.ratio(None, {"mean": 1.0}))

    def test_missing_lumen_benchmark_shows_dash_and_no_ratio(self):
        rows = self.rows_by_name(compare_ray.build_rows(self.ray, self.lumen))
        for name in ("n_n_actor_calls_with_arg_async",
                     "single_client_get_object_containing_10k_refs"):
            self.assertIsNone(rows[name]["lumen"])
            self.assertIsNone(rows[name]["lumen_over_ray"])
        md = compare_ray.markdown_table(compare_ray.build_rows(self.ray, self.lumen))
        line = [l for l in md if l.startswith("| n_n_actor_calls_with_arg_async |")]
        self.assertEqual(
            line, ["| n_n_actor_calls_with_arg_async | 1,819.32 \u00b1 183.97 | "
                   + DASH + " | " + DASH + " |"])

    def test_missing_ray_benchmark_shows_dash(self):
        ray = dict(self.ray)
        del ray["single_client_wait_1k_refs"]
        rows = self.rows_by_name(compare_ray.build_rows(ray, self.lumen))
        self.assertIsNone(rows["single_client_wait_1k_refs"]["ray"])
        self.assertIsNone(rows["single_client_wait_1k_refs"]["lumen_over_ray"])

    def test_markdown_rows(self):
        md = compare_ray.markdown_table(compare_ray.build_rows(self.ray, self.lumen))
        self.assertEqual(md[0], "| Benchmark | Ray | Lumen | Lumen \u00f7 Ray |")
        self.assertEqual(md[1], "|---|---:|---:|---:|")
        self.assertEqual(len(md), 2 + len(compare_ray.BENCHMARKS))
        self.assertIn(
            "| single_client_tasks_sync | 933.78 \u00b1 40.60 | "
            "1,867.56 \u00b1 81.20 | 2.00\u00d7 |", md)
        self.assertIn(
            "| single_client_put_gigabytes | 1.02 \u00b1 0.53 | 2.04 \u00b1 0.31 | 2.00\u00d7 |",
            md)
        for line in md:
            self.assertEqual(line.count("|"), 5)

    def test_markdown_rows_with_ray_cpp(self):
        rows = compare_ray.build_rows(self.ray, self.lumen, self.cpp)
        md = compare_ray.markdown_table(rows, with_cpp=True)
        self.assertEqual(
            md[0],
            "| Benchmark | Ray | Lumen | Lumen \u00f7 Ray | Ray C++ | Lumen \u00f7 Ray C++ |")
        row = [l for l in md if l.startswith("| 1_1_actor_calls_sync |")][0]
        self.assertEqual(
            row,
            "| 1_1_actor_calls_sync | 1,721.87 \u00b1 59.44 | 3,443.74 \u00b1 90.10 | "
            "2.00\u00d7 | 3,294.46 \u00b1 226.86 | 1.05\u00d7 |")
        # A benchmark the C++ driver does not run has no C++ figure.
        row = [l for l in md if l.startswith("| n_n_actor_calls_async |")][0]
        self.assertTrue(row.endswith("| " + DASH + " | " + DASH + " |"))

    def test_filter(self):
        rows = compare_ray.build_rows(self.ray, self.lumen, name_filter="actor")
        self.assertEqual(
            [r["name"] for r in rows],
            [n for n in compare_ray.BENCHMARKS if "actor" in n])

    def test_baselines(self):
        b = compare_ray.build_baselines(self.lumen)
        self.assertEqual([x["name"] for x in b], compare_ray.BASELINES)
        self.assertEqual(b[1]["unit"], "GB/s")
        self.assertEqual(b[0]["mean"], 21450.5)
        none = compare_ray.build_baselines({})
        self.assertIsNone(none[0]["mean"])
        self.assertIn(DASH, compare_ray.baseline_lines(none)[0])

    def test_text_table_is_aligned(self):
        lines = compare_ray.text_table(compare_ray.build_rows(self.ray, self.lumen))
        self.assertTrue(lines[0].startswith("Benchmark"))
        self.assertEqual(set(lines[1]), {"-", " "})
        self.assertEqual(len(lines), 2 + len(compare_ray.BENCHMARKS))


class MainTest(unittest.TestCase):
    def test_writes_markdown_and_json(self):
        with tempfile.TemporaryDirectory() as out:
            argv = [
                "--ray", os.path.join(DATA, "ray_microbenchmark_sample.txt"),
                "--lumen", os.path.join(DATA, "lumen_microbenchmark_sample.txt"),
                "--lumen-json", os.path.join(DATA, "lumen_microbenchmark_sample.json"),
                "--ray-cpp", os.path.join(DATA, "ray_cpp_microbenchmark_sample.txt"),
                "--ray-cpp-status", "ok",
                "--ray-version", "2.60.0",
                "--num-cpus", "2",
                "--harness", "quick",
                "--out-dir", out,
            ]
            with open(os.devnull, "w") as devnull:
                saved, sys.stdout = sys.stdout, devnull
                try:
                    self.assertEqual(compare_ray.main(argv), 0)
                finally:
                    sys.stdout = saved
            with open(os.path.join(out, "compare.json")) as f:
                report = json.load(f)
            with open(os.path.join(out, "compare.md")) as f:
                md = f.read()
        for key in ("date", "machine", "rows", "baselines", "ray_version", "num_cpus"):
            self.assertIn(key, report)
        for key in ("cpu_model", "cores", "memory_bytes"):
            self.assertIn(key, report["machine"])
        self.assertEqual(report["num_cpus"], 2)
        self.assertEqual(len(report["rows"]), len(compare_ray.BENCHMARKS))
        rows = {r["name"]: r for r in report["rows"]}
        self.assertIsNone(rows["n_n_actor_calls_with_arg_async"]["lumen"])
        self.assertAlmostEqual(rows["single_client_tasks_sync"]["lumen_over_ray"], 2.0)
        self.assertIn("ray_cpp", rows["single_client_tasks_sync"])
        self.assertIn("| Benchmark | Ray | Lumen | Lumen \u00f7 Ray | Ray C++ |", md)
        self.assertIn("baseline_grpc_unary_echo", md)
        self.assertIn("Ray: 2.60.0", md)


if __name__ == "__main__":
    unittest.main()
