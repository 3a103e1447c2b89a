#!/usr/bin/env python3
"""The object-transfer table of `bench/compare_ray.sh --transfer`.

Reads the outputs of Lumen's side (lumen_object_transfer_bench: object_transfer_gbps,
plain_tcp_gbps) and Ray's side (bench/ray_object_transfer.py: ray_object_transfer_gbps,
plain_tcp_gbps). Each ran between two namespace hosts with its own plain TCP baseline
between the same hosts in the same run, so each system's figure is given as a
fraction of its own TCP, and Lumen ÷ Ray both raw and normalized by each run's TCP.
Prints the table and writes compare_transfer.md and compare_transfer.json (with the
date and the machine) to --out-dir. Standard library only.

Usage:
  compare_transfer.py --lumen LUMEN.txt --ray RAY.txt [--ray-version V] [--out-dir DIR]
"""

import argparse
import datetime
import json
import os
import re
import sys

sys.dont_write_bytecode = True  # keep bench/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_ray import machine_info  # noqa: E402

DASH = "\u2014"


def parse(text, transfer_key):
    """{'transfer': GB/s, 'tcp': GB/s, 'bytes': N, 'reps': N} from a side's output.

    Whatever the output lacks is None.
    """
    def number(pattern):
        m = re.search(pattern, text, re.MULTILINE)
        return float(m.group(1)) if m else None

    out = {
        "transfer": number(rf"^{transfer_key} ([0-9.]+) GB/s"),
        "tcp": number(r"^plain_tcp_gbps ([0-9.]+) GB/s"),
    }
    m = re.search(r"^\w*object_transfer_bytes (\d+) \(median of (\d+)\)", text, re.MULTILINE)
    out["bytes"], out["reps"] = (int(m.group(1)), int(m.group(2))) if m else (None, None)
    return out


def divide(a, b):
    return a / b if a is not None and b else None


def build_report(lumen, ray, ray_version="", meta=None):
    rows = [
        {"system": "Lumen", **lumen, "of_tcp": divide(lumen["transfer"], lumen["tcp"])},
        {"system": f"Ray {ray_version}".strip(), **ray,
         "of_tcp": divide(ray["transfer"], ray["tcp"])},
    ]
    return {
        "meta": meta or {},
        "rows": rows,
        "lumen_over_ray": divide(lumen["transfer"], ray["transfer"]),
        "lumen_over_ray_tcp_normalized": divide(rows[0]["of_tcp"], rows[1]["of_tcp"]),
    }


def fmt(x, digits=3):
    return DASH if x is None else f"{x:.{digits}f}"


def render_markdown(report):
    meta = report["meta"]
    lines = []
    if meta:
        lines.append(f"Object transfer between two namespace hosts, {meta.get('date', '')}: "
                     f"{meta.get('cpu_model', '?')}, {meta.get('cores', '?')} cores, "
                     f"{meta.get('memory_gib', '?')} GiB")
        lines.append("")
    lines.append("| system | bytes | reps | object transfer GB/s | plain TCP GB/s (same run) "
                 "| ÷ TCP |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in report["rows"]:
        lines.append(f"| {r['system']} | {r['bytes'] if r['bytes'] else DASH} "
                     f"| {r['reps'] if r['reps'] else DASH} | {fmt(r['transfer'])} "
                     f"| {fmt(r['tcp'])} | {fmt(r['of_tcp'], 2)} |")
    lines.append("")
    normalized = fmt(report["lumen_over_ray_tcp_normalized"], 2)
    lines.append(f"Lumen ÷ Ray: {fmt(report['lumen_over_ray'], 2)} "
                 f"(each ÷ its own run's TCP first: {normalized})")
    return "\n".join(lines) + "\n"


def read_text(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lumen", required=True)
    p.add_argument("--ray", required=True)
    p.add_argument("--ray-version", default="")
    p.add_argument("--out-dir", default="")
    args = p.parse_args(argv)
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            **machine_info()}
    report = build_report(parse(read_text(args.lumen), "object_transfer_gbps"),
                          parse(read_text(args.ray), "ray_object_transfer_gbps"),
                          args.ray_version, meta)
    text = render_markdown(report)
    print(text, end="")
    if args.out_dir:
        with open(os.path.join(args.out_dir, "compare_transfer.md"), "w") as f:
            f.write(text)
        with open(os.path.join(args.out_dir, "compare_transfer.json"), "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
