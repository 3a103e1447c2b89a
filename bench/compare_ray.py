#!/usr/bin/env python3
"""Merge Ray's and Lumen's microbenchmark outputs into one comparison table.

Both sides print Ray's line format, `<name> per second <mean> +- <std>`; every
other line is ignored. Ray's own names ("1:1 actor calls sync",
"single client put calls (Plasma Store)") are mapped to Ray's metric names
("1_1_actor_calls_sync", "single_client_put_calls_Plasma_Store"), which are the
names Lumen prints, so `ray microbenchmark` output parses too.

Prints the table and writes compare.md and compare.json (with the date, CPU
model, cores and memory) to --out-dir. Standard library only: the parsing
functions are imported by tests/bench/compare_ray_parse_test.py.

Usage:
  compare_ray.py --ray RAY.txt --lumen LUMEN.txt [--lumen-json LUMEN.json]
                 [--ray-cpp RAY_CPP.txt] [--ray-cpp-status TEXT]
                 [--ray-version V] [--num-cpus N] [--harness TEXT]
                 [--filter SUBSTRING] [--out-dir build/bench]
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import sys

# The benchmarks Lumen implements, in the order of Ray's ray_perf.py.
BENCHMARKS = [
    "single_client_get_calls_Plasma_Store",
    "single_client_put_calls_Plasma_Store",
    "single_client_put_gigabytes",
    "single_client_tasks_and_get_batch",
    "multi_client_put_gigabytes",
    "single_client_get_object_containing_10k_refs",
    "single_client_wait_1k_refs",
    "single_client_tasks_sync",
    "single_client_tasks_async",
    "multi_client_tasks_async",
    "1_1_actor_calls_sync",
    "1_1_actor_calls_async",
    "1_1_actor_calls_concurrent",
    "1_1_actor_calls_64KiB_args_async",
    "1_n_actor_calls_async",
    "n_n_actor_calls_async",
    "n_n_actor_calls_with_arg_async",
    "placement_group_create/removal",
]

# Large objects read in place, which ray_perf.py does not measure: both sides run them
# (bench/ray_microbenchmarks.py with numpy arrays), and a row shows when either printed it.
LARGE_OBJECT_BENCHMARKS = [
    "single_client_get_gigabytes",
    "tasks_sharing_large_object",
    "weights_dict_put",
    "weights_dict_get",
    "weights_dict_20_tasks",
]

# Machine baselines that Lumen's microbenchmark prints.
BASELINES = ["baseline_grpc_unary_echo", "baseline_memcpy_gigabytes"]

MISSING = "\u2014"  # em dash: no figure

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9_][A-Za-z0-9_:()/,. -]*?)\s+per second\s+"
    r"(?P<mean>" + _NUMBER + r")\s+\+-\s+(?P<std>" + _NUMBER + r")\s*$",
    re.IGNORECASE,
)


def metric_name(name):
    """Ray benchmark name -> Ray metric name (as in release/perf_metrics and Lumen).

    "1:1 actor calls sync" -> "1_1_actor_calls_sync";
    "single client put calls (Plasma Store)" -> "single_client_put_calls_Plasma_Store".
    Names already in metric form are returned unchanged."""
    out = name.strip().replace(":", "_").replace("(", "").replace(")", "")
    return "_".join(out.split())


def unit_of(name):
    if "gigabytes" in name:
        return "GB/s"
    if "64KiB_args" in name:
        return "MB/s"
    return "ops/s"


def parse_lines(text):
    """Parse `<name> per second <mean> +- <std>` lines.

    Returns {metric_name: {"mean": float, "stddev": float}}; other lines are
    ignored; for a name printed twice the last line wins."""
    results = {}
    for raw in text.splitlines():
        m = _LINE.match(raw.strip())
        if not m:
            continue
        results[metric_name(m.group("name"))] = {
            "mean": float(m.group("mean")),
            "stddev": float(m.group("std")),
        }
    return results


def parse_json_results(text):
    """Parse Lumen's --json output: a JSON array of {"name","mean","stddev","unit"}."""
    results = {}
    for item in json.loads(text):
        results[metric_name(item["name"])] = {
            "mean": float(item["mean"]),
            "stddev": float(item.get("stddev", 0.0)),
        }
    return results


def ratio(numerator, denominator):
    """numerator.mean / denominator.mean, or None when either is missing or zero."""
    if numerator is None or denominator is None:
        return None
    a, b = numerator["mean"], denominator["mean"]
    if not b or math.isnan(a) or math.isnan(b):
        return None
    return a / b


def build_rows(ray, lumen, ray_cpp=None, name_filter=None):
    """One row per benchmark Lumen implements (then any other benchmark that both
    Ray and Lumen printed), excluding the machine baselines."""
    names = list(BENCHMARKS)
    names += [n for n in LARGE_OBJECT_BENCHMARKS if n in lumen or n in ray]
    for extra in list(lumen) + list(ray) + list(ray_cpp or {}):
        if extra not in names and extra not in BASELINES and extra in lumen and (
            extra in ray or extra in (ray_cpp or {})
        ):
            names.append(extra)
    rows = []
    for name in names:
        if name_filter and name_filter not in name:
            continue
        r, lu = ray.get(name), lumen.get(name)
        row = {
            "name": name,
            "unit": unit_of(name),
            "ray": r,
            "lumen": lu,
            "lumen_over_ray": ratio(lu, r),
        }
        if ray_cpp is not None:
            rc = ray_cpp.get(name)
            row["ray_cpp"] = rc
            row["lumen_over_ray_cpp"] = ratio(lu, rc)
        rows.append(row)
    return rows


def build_baselines(lumen):
    out = []
    for name in BASELINES + sorted(
        n for n in lumen if n.startswith("baseline_") and n not in BASELINES
    ):
        v = lumen.get(name)
        out.append(
            {
                "name": name,
                "unit": unit_of(name),
                "mean": v["mean"] if v else None,
                "stddev": v["stddev"] if v else None,
            }
        )
    return out


def fmt_value(v):
    if v is None:
        return MISSING
    return "{:,.2f} \u00b1 {:,.2f}".format(v["mean"], v["stddev"])


def fmt_ratio(x):
    return MISSING if x is None else "{:,.2f}\u00d7".format(x)


def table_cells(rows, with_cpp):
    header = ["Benchmark", "Ray", "Lumen", "Lumen \u00f7 Ray"]
    if with_cpp:
        header += ["Ray C++", "Lumen \u00f7 Ray C++"]
    body = []
    for row in rows:
        cells = [
            row["name"],
            fmt_value(row["ray"]),
            fmt_value(row["lumen"]),
            fmt_ratio(row["lumen_over_ray"]),
        ]
        if with_cpp:
            cells += [fmt_value(row.get("ray_cpp")), fmt_ratio(row.get("lumen_over_ray_cpp"))]
        body.append(cells)
    return header, body


def markdown_table(rows, with_cpp=False):
    """Markdown table lines: header, separator, one line per row."""
    header, body = table_cells(rows, with_cpp)
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for cells in body:
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def text_table(rows, with_cpp=False):
    """The same table, aligned for a terminal."""
    header, body = table_cells(rows, with_cpp)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    out = []
    for k, cells in enumerate([header] + body):
        parts = [cells[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(cells[1:], widths[1:])
        ]
        out.append("  ".join(parts).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def baseline_lines(baselines):
    lines = []
    for b in baselines:
        v = None if b["mean"] is None else b
        lines.append("{}: {} {}".format(b["name"], fmt_value(v), b["unit"]))
    return lines


def machine_info():
    cpu_model = platform.processor() or "unknown"
    mem = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    return {
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "memory_bytes": mem,
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "os": platform.platform(),
    }


def build_report(ray, lumen, ray_cpp=None, name_filter=None, meta=None):
    meta = dict(meta or {})
    rows = build_rows(ray, lumen, ray_cpp, name_filter)
    return {
        "date": meta.pop("date", None)
        or datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": meta.pop("machine", None) or machine_info(),
        **meta,
        "rows": rows,
        "baselines": build_baselines(lumen),
    }


def render_markdown(report):
    m = report["machine"]
    with_cpp = any("ray_cpp" in r for r in report["rows"])
    lines = ["# Lumen vs Ray core microbenchmarks", ""]
    lines.append("- Date: {}".format(report["date"]))
    lines.append(
        "- Machine: {}, {} cores, {} GiB memory ({})".format(
            m.get("cpu_model"), m.get("cores"), m.get("memory_gib"), m.get("os")
        )
    )
    for key, label in (
        ("num_cpus", "CPUs given to each system"),
        ("ray_version", "Ray"),
        ("harness", "Harness"),
        ("ray_cpp_status", "Ray C++ API"),
    ):
        if report.get(key) not in (None, ""):
            lines.append("- {}: {}".format(label, report[key]))
    lines.append(
        "- Figures are per second (GB/s for *_gigabytes), mean \u00b1 standard "
        "deviation over the trials; Lumen \u00f7 Ray > 1 means Lumen is faster; "
        "{} means no figure.".format(MISSING)
    )
    lines.append("")
    lines += markdown_table(report["rows"], with_cpp)
    lines += ["", "## Machine baselines (from Lumen's microbenchmark)", ""]
    lines += ["| Baseline | Figure | Unit |", "|---|---:|---|"]
    for b in report["baselines"]:
        v = None if b["mean"] is None else b
        lines.append("| {} | {} | {} |".format(b["name"], fmt_value(v), b["unit"]))
    return "\n".join(lines) + "\n"


def read_text(path):
    if not path or not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ray", help="Ray (Python) microbenchmark output")
    p.add_argument("--ray-cpp", help="Ray C++ API microbenchmark output")
    p.add_argument("--ray-cpp-status", default=None, help="why Ray C++ is absent, or ok")
    p.add_argument("--lumen", help="lumen microbenchmark output")
    p.add_argument("--lumen-json", help="lumen microbenchmark --json output")
    p.add_argument("--ray-version", default=None)
    p.add_argument("--num-cpus", type=int, default=None)
    p.add_argument("--harness", default=None)
    p.add_argument("--filter", default=None)
    p.add_argument("--out-dir", default="build/bench")
    args = p.parse_args(argv)

    ray = parse_lines(read_text(args.ray))
    lumen = {}
    js = read_text(args.lumen_json)
    if js.strip():
        try:
            lumen.update(parse_json_results(js))
        except (ValueError, KeyError, TypeError) as e:
            print("compare_ray: ignoring unreadable {}: {}".format(args.lumen_json, e),
                  file=sys.stderr)
    lumen.update(parse_lines(read_text(args.lumen)))
    # The Ray C++ columns appear when the C++ run produced at least one figure.
    ray_cpp = parse_lines(read_text(args.ray_cpp)) or None

    meta = {
        "num_cpus": args.num_cpus,
        "ray_version": args.ray_version,
        "harness": args.harness,
        "ray_cpp_status": args.ray_cpp_status,
    }
    report = build_report(ray, lumen, ray_cpp, args.filter or None, meta)
    with_cpp = ray_cpp is not None

    print()
    print("Lumen vs Ray ({} CPUs each, Ray {}; per second, GB/s for *_gigabytes)".format(
        args.num_cpus, args.ray_version))
    for line in text_table(report["rows"], with_cpp):
        print(line)
    print()
    print("Machine baselines:")
    for line in baseline_lines(report["baselines"]):
        print("  " + line)
    if args.ray_cpp_status and args.ray_cpp_status != "ok":
        print()
        print("Ray C++ API: " + args.ray_cpp_status)

    os.makedirs(args.out_dir, exist_ok=True)
    md_path = os.path.join(args.out_dir, "compare.md")
    json_path = os.path.join(args.out_dir, "compare.json")
    with open(md_path, "w") as f:
        f.write(render_markdown(report))
    with open(json_path, "w") as f:
        json.dump(report, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print()
    print("wrote {} and {}".format(md_path, json_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
