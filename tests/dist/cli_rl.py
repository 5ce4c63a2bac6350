#!/usr/bin/env python3
"""`mpirun -np 2 p4lm rl` (ctest dist/cli_rl): PPO with the rollouts split over two ranks.

One process runs `p4lm run --preset tiny` through the reward models (stories260K warm start, the heads
on all-MiniLM-L6-v2 of the model cache; without it the test is skipped). Then `p4lm rl` on that run,
2 iterations of 4 rollouts:
  - as two ranks: exit 0, the summary printed once, one metrics row per iteration (0, 1, 2: rank 0
    alone writes), every row after 0 with the reward components, a policy that moved away from the warm
    start, every value finite;
  - its evaluation before training (greedy pitches of the warm start, rank 0) equals one process's;
  - two ranks stopped after iteration 1 and resumed on two ranks end with the uninterrupted run's
    metrics and policy, byte for byte (rank r samples from its own seed; the state at an iteration's
    end is the same on every rank).
The two-rank rollouts are not one process's (rank 1 samples from a seed derived from rank 0's), so the
trained policies of one and two processes are not compared.

    cli_rl.py <p4lm> <workdir> <encoder folder> <launcher...>
"""
import json
import math
import os
import shutil
import subprocess
import sys

from cli_common import tensors

SKIP = 77  # ctest SKIP_RETURN_CODE


def rows(folder):
    with open(os.path.join(folder, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    p4lm, work, encoder, launcher = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    if not os.path.exists(os.path.join(encoder, "config.json")):
        print(f"P4LM_TEST_SKIPPED: no sentence encoder at {encoder} (scripts/fetch-models.sh)")
        return SKIP
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

    def run(args, ranks=1):
        prefix = launcher if ranks == 2 else []
        r = subprocess.run([*prefix, p4lm, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            sys.exit(f"FAIL: {' '.join(r.args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r.stdout

    pipeline = os.path.join(work, "run")
    run(["run", "--preset", "tiny", "--out", pipeline, "--last-stage", "6", "--progress=false"])
    common = ["rl", "--sft", os.path.join(pipeline, "sft"), "--data", os.path.join(pipeline, "data"),
              "--rewards", os.path.join(pipeline, "rewards"), "--encoder", encoder, "--batch-size", "4",
              "--mini-batch-size", "2", "--ppo-epochs", "1", "--response-length", "16", "--learning-rate", "1e-3",
              "--eval-every", "1", "--eval-pairs", "4", "--save-every", "1", "--progress", "false"]
    one, two, resumed = (os.path.join(work, name) for name in ("one", "two", "resumed"))
    run([*common, "--iterations", "2", "--out", one])
    out_two = run([*common, "--iterations", "2", "--out", two], ranks=2)
    run([*common, "--iterations", "1", "--out", resumed], ranks=2)
    run([*common, "--iterations", "2", "--out", resumed], ranks=2)

    problems = []
    if out_two.count("rl: 2 iterations") != 1:
        problems.append(f"the two-rank run should print its summary once (rank 0 alone prints):\n{out_two}")
    r_one, r_two = rows(one), rows(two)
    if [r.get("iteration") for r in r_two] != [0, 1, 2]:
        problems.append(f"two ranks: metrics rows for iterations {[r.get('iteration') for r in r_two]}, "
                        "expected [0, 1, 2]")
    components = [k for k in r_two[-1] if k.startswith("rewards/") and k.endswith("/mean")]
    if len(components) != 4 or any(not all(k in r for k in components) for r in r_two[1:]):
        problems.append(f"two ranks: reward components {components} missing from the iteration rows")
    for r in r_two:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"two ranks: iteration {r.get('iteration')}: {k} = {v}")
    evals = lambda row: {k: v for k, v in row.items() if k.startswith(("eval/", "gold/"))}
    if not evals(r_two[0]) or evals(r_two[0]) != evals(r_one[0]):
        problems.append(f"the evaluation before training differs: {evals(r_two[0])} vs one process "
                        f"{evals(r_one[0])}")
    start = tensors(os.path.join(pipeline, "sft", "model.safetensors"))
    trained = tensors(os.path.join(two, "policy.safetensors"))
    moved = sum(1 for k in trained if k in start and trained[k] != start[k])
    print(f"two ranks: {moved} of {len(trained)} tensors moved from the warm start; eval/reward "
          f"{r_two[0].get('eval/reward')} -> {r_two[-1].get('eval/reward')}")
    if moved == 0:
        problems.append("two ranks: the policy did not move from the warm start")
    if rows(resumed) != r_two:
        problems.append("two ranks stopped after iteration 1 and resumed: metrics differ from the "
                        "uninterrupted run")
    with open(os.path.join(two, "policy.safetensors"), "rb") as a, \
            open(os.path.join(resumed, "policy.safetensors"), "rb") as b:
        if a.read() != b.read():
            problems.append("two ranks stopped after iteration 1 and resumed: the policy differs")
    for p in problems:
        print("FAIL:", p)
    if not problems:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
