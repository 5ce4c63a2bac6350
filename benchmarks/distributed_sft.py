#!/usr/bin/env python3
"""The warm start (`p4lm sft`) three ways on one machine, in alternated rounds:

  A: 1 process x 1 thread, batch B
  B: 2 MPI ranks x 1 thread, batch B/2 each (the same global batch: the same model, docs/distributed.md)
  C: 1 process x 2 threads, batch B

The time of a step is (t(k2 steps) - t(k1 steps)) / (k2 - k1) of two whole commands, which removes
loading and the end-of-run evaluations. Prints each configuration's step time and the per-round ratios
(median, min, max), and B's communication share: the Trainer's line "the reductions took x s of y s
of steps" of its k2-step runs. Needs an MPI-enabled p4lm (the `mpi` preset) and a main-job folder with
data/ and cf/cf.safetensors (`p4lm run`):

  python3 benchmarks/distributed_sft.py --p4lm build/mpi/bin/p4lm --run runs/main --rounds 5
"""
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

REDUCTIONS = re.compile(r"the reductions took ([0-9.e+-]+) s of ([0-9.e+-]+) s of steps")


def sft_args(p4lm, run, out, steps, batch):
    return [p4lm, "sft", "--data", f"{run}/data", "--cf", f"{run}/cf/cf.safetensors", "--base", "smollm2",
            "--out", out, "--batch-size", str(batch), "--stage1-steps", "0", "--stage2-steps", str(steps),
            # The main job's stage 2 as docs/distributed.md measured it (the rate and the link weight
            # leave a step's time unchanged; the default preset now takes batch 4 at 3e-3).
            "--train-top-layers", "4", "--stage2-lr", "5e-4", "--link-weight", "5",
            "--eval-every", "0", "--eval-examples", "8", "--max-test", "8", "--checkpoint-every", "0",
            "--resume", "false", "--progress", "true"]


def command(config, p4lm, run, out, steps, batch):
    threads = "2" if config == "C" else "1"
    env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
    if config == "B":
        launcher = ["mpiexec", "--allow-run-as-root", "--oversubscribe", "-n", "2",
                    "-x", "OMP_NUM_THREADS", "-x", "OPENBLAS_NUM_THREADS"]
        return launcher + sft_args(p4lm, run, out, steps, batch // 2), env
    return sft_args(p4lm, run, out, steps, batch), env


def spread(values):
    return f"{statistics.median(values):.3f} | {min(values):.3f} | {max(values):.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--p4lm", required=True)
    ap.add_argument("--run", required=True, help="main-job folder (data/, cf/cf.safetensors)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", default="1,3", help="k1,k2")
    ap.add_argument("--batch", type=int, default=8, help="global batch (even)")
    a = ap.parse_args()
    k1, k2 = (int(x) for x in a.steps.split(","))
    step = {c: [] for c in "ABC"}
    shares = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for config in "ABC":
                t = {}
                for k in (k1, k2):
                    cmd, env = command(config, a.p4lm, a.run, f"{tmp}/{config}{k}", k, a.batch)
                    start = time.perf_counter()
                    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True)
                    t[k] = time.perf_counter() - start
                    if done.returncode != 0:
                        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
                    if config == "B" and k == k2:
                        m = REDUCTIONS.findall(done.stderr)
                        if m:
                            shares.append((float(m[-1][0]), float(m[-1][1])))
                step[config].append((t[k2] - t[k1]) / (k2 - k1))
                print(f"round {r + 1} {config}: {t[k1]:.1f} s ({k1} steps), {t[k2]:.1f} s ({k2} steps), "
                      f"step {step[config][-1]:.2f} s", flush=True)
    print("\n| | median | min | max |\n| --- | --- | --- | --- |")
    names = {"A": "1 process x 1 thread", "B": "2 processes x 1 thread", "C": "1 process x 2 threads"}
    for c in "ABC":
        print(f"| step, {c}: {names[c]} (s) | {spread(step[c])} |")
    for x, y in (("B", "A"), ("C", "A"), ("B", "C")):
        print(f"| per-round ratio {x} / {y} (step) | {spread([p / q for p, q in zip(step[x], step[y])])} |")
    if shares:
        print(f"| B's reductions, share of its steps ({k2}-step runs) | "
              f"{spread([100 * red / total for red, total in shares])} |")
        print(f"| B's reductions per step (s) | {spread([red / k2 for red, _ in shares])} |")


if __name__ == "__main__":
    main()
