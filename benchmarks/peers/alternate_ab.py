#!/usr/bin/env python3
"""Two builds of one p4lm benchmark in alternated rounds: the before/after check of a change.

Each round runs build A, then build B (the order flips every round, so neither always runs second),
with the same arguments, and reads one number from each JSON line (`--field`, tokens_per_s by
default). Prints every round, then the median, min and max of the per-round ratios B / A. On a shared
machine a single pair swings by a fifth or more; the median of per-round ratios is the reading to
report (docs/performance.md, "How the figures are measured").

    env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=2 python3 benchmarks/peers/alternate_ab.py \\
        --rounds 7 before=/tmp/base/benchmarks/bench_lm_generate after=build/release/benchmarks/bench_lm_generate \\
        -- --model 15M --batch 1 --tokens 128 --json
"""
import argparse
import json
import statistics
import subprocess
import sys


def run_json(binary: str, args: list[str], env: dict[str, str] | None = None) -> dict:
    """The last JSON object line a benchmark printed (also used by the other peer scripts here)."""
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True, env=env).stdout
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise SystemExit(f"alternate_ab: {binary} printed no JSON line (pass --json?)")


def measure(binary: str, args: list[str], field: str) -> float:
    got = run_json(binary, args)
    if field not in got:
        raise SystemExit(f"alternate_ab: {binary} printed no '{field}' in its JSON line")
    return float(got[field])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--field", default="tokens_per_s")
    parser.add_argument("programs", nargs=2, metavar="NAME=BINARY")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="after --: the benchmark's own arguments")
    o = parser.parse_args()
    args = o.args[1:] if o.args[:1] == ["--"] else o.args
    (name_a, bin_a), (name_b, bin_b) = (p.split("=", 1) for p in o.programs)
    if o.rounds < 5:
        print("alternate_ab: fewer than 5 rounds is not a measurement", file=sys.stderr)
        return 2
    ratios, values_a, values_b = [], [], []
    for r in range(o.rounds):
        order = [(name_a, bin_a), (name_b, bin_b)] if r % 2 == 0 else [(name_b, bin_b), (name_a, bin_a)]
        got = {name: measure(binary, args, o.field) for name, binary in order}
        values_a.append(got[name_a])
        values_b.append(got[name_b])
        ratios.append(got[name_b] / got[name_a])
        print(f"round {r + 1}: {name_a} {got[name_a]:.4g}  {name_b} {got[name_b]:.4g}  "
              f"{name_b}/{name_a} {ratios[-1]:.4f}", flush=True)
    print(f"{name_a}: median {statistics.median(values_a):.4g} {o.field} (min {min(values_a):.4g}, max {max(values_a):.4g})")
    print(f"{name_b}: median {statistics.median(values_b):.4g} {o.field} (min {min(values_b):.4g}, max {max(values_b):.4g})")
    print(f"RESULT {name_b}/{name_a} {o.field}: median {statistics.median(ratios):.4f} "
          f"(min {min(ratios):.4f}, max {max(ratios):.4f}) over {o.rounds} alternated rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
