#!/usr/bin/env python3
"""Per-kernel time of one decode step from an ncu CSV (check-on-gpu.sh step 7).

  ncu --profile-from-start off --clock-control none --metrics gpu__time_duration.sum --csv --print-units base \
      node native/cuda/gpu/profile-decode.mjs --steps 3 > ncu.csv
  python3 native/cuda/gpu/ncu_summary.py ncu.csv --steps 3 [--step-ms 1.73]

The profiled range holds `--steps` identical op-by-op decode steps, so each kernel's launches and time are
divided by the step count. --step-ms (the measured wall time of a step) gives the time between kernels:
step time - kernel time. Prints a table, largest total first.
"""
import argparse
import csv
import io
import sys
from collections import OrderedDict

UNIT_NS = {"nsecond": 1.0, "ns": 1.0, "usecond": 1e3, "us": 1e3, "msecond": 1e6, "ms": 1e6, "second": 1e9, "s": 1e9}


def rows_of(text):
    """The CSV part of ncu's output (it may be preceded by ==PROF== lines and program output)."""
    lines = text.splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        raise SystemExit("no ncu CSV header (a line starting with \"ID\") found")
    return list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))


def short(name):
    """Kernel name without its argument list and template noise: rows_kernel<1, true, false>(RowsArgs) -> rows_kernel<1,true,false>."""
    n = name.split("(")[0].replace("void ", "").replace(" ", "")
    return n[:60]


def summarize(rows, steps):
    per = OrderedDict()
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        ns = v * UNIT_NS.get(r.get("Metric Unit", "nsecond").strip(), 1.0)
        k = short(r["Kernel Name"])
        e = per.setdefault(k, {"launches": 0, "ns": 0.0, "grid": r.get("Grid Size", ""), "block": r.get("Block Size", "")})
        e["launches"] += 1
        e["ns"] += ns
    out = []
    for k, e in per.items():
        out.append({"kernel": k, "launchesPerStep": e["launches"] / steps, "usPerStep": e["ns"] / steps / 1e3, "usMean": e["ns"] / e["launches"] / 1e3,
                    "grid": e["grid"], "block": e["block"]})
    out.sort(key=lambda x: -x["usPerStep"])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--step-ms", type=float, help="measured wall time of one op-by-op step, ms")
    a = ap.parse_args()
    with open(a.csv, encoding="utf-8", errors="replace") as f:
        table = summarize(rows_of(f.read()), a.steps)
    if not table:
        raise SystemExit("no gpu__time_duration.sum rows in the CSV")
    launches = sum(t["launchesPerStep"] for t in table)
    us = sum(t["usPerStep"] for t in table)
    print(f"{'kernel':60s} {'launches':>8s} {'us/step':>9s} {'us mean':>8s}  grid / block")
    for t in table:
        print(f"{t['kernel']:60s} {t['launchesPerStep']:8.1f} {t['usPerStep']:9.1f} {t['usMean']:8.2f}  {t['grid']} / {t['block']}")
    line = f"per step: {launches:.0f} kernels, {us:.1f} us of kernel time"
    if a.step_ms:
        line += f"; step {a.step_ms * 1e3:.1f} us, so {a.step_ms * 1e3 - us:.1f} us between kernels ({(a.step_ms * 1e3 - us) / max(launches, 1):.2f} us per launch)"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
