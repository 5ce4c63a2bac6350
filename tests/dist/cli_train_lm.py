#!/usr/bin/env python3
"""`mpirun -np 2 p4lm train-lm --batch 4` against `p4lm train-lm --batch 8` (ctest dist/cli_train_lm).

Both runs train the same new model on the same corpus for 10 steps; the logged losses must agree to
1e-5 relative and the checkpointed parameters to 5e-5 absolute (float32 summation order: 4e-6 measured,
docs/distributed.md), and the two-rank run must have written one metrics record per step.

    cli_train_lm.py <p4lm> <workdir> <launcher...>
"""
import os
import shutil
import subprocess
import sys

from cli_common import losses, tensors


def main():
    p4lm, work, launcher = sys.argv[1], sys.argv[2], sys.argv[3:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    corpus = os.path.join(work, "corpus.txt")
    with open(corpus, "w") as f:
        for i in range(300):
            f.write(f"story {i}: the cat {i % 7} saw the dog {i % 11} and they went home at {i % 5}.\n")
    common = ["train-lm", "--arch", "llama", "--tokenizer", "stories260K", "--d-model", "32", "--n-layers", "2",
              "--n-heads", "2", "--max-seq", "32", "--seq", "16", "--steps", "10", "--warmup", "2", "--lr", "3e-3",
              "--progress", "false", "--data", corpus]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    one, two = os.path.join(work, "one"), os.path.join(work, "two")
    subprocess.run([p4lm, *common, "--batch", "8", "--out", one], check=True, env=env)
    subprocess.run([*launcher, p4lm, *common, "--batch", "4", "--out", two], check=True, env=env)
    a, b = losses(one), losses(two)
    problems = []
    if len(a) != 10 or len(b) != 10:
        problems.append(f"metrics records: {len(a)} (one process) and {len(b)} (two ranks), expected 10 each")
    for step, (x, y) in enumerate(zip(a, b), 1):
        if abs(x - y) > 1e-5 * abs(x):
            problems.append(f"step {step}: loss {x} (one process) vs {y} (two ranks)")
    ta, tb = tensors(os.path.join(one, "checkpoint.safetensors")), tensors(os.path.join(two, "checkpoint.safetensors"))
    if ta.keys() != tb.keys():
        problems.append("the checkpoints hold different tensors")
    worst = max(max(abs(x - y) for x, y in zip(ta[k], tb[k])) for k in ta if k in tb)
    moved = max(max(abs(x) for x in ta[k]) for k in ta)
    print(f"losses {a[0]:.6f} -> {a[-1]:.6f}; max |parameter difference| {worst:.3g} (largest parameter {moved:.3g})")
    if worst > 5e-5:
        problems.append(f"parameters differ by up to {worst}")
    if a[-1] >= a[0]:
        problems.append("the loss did not go down: the runs trained nothing")
    for p in problems:
        print("FAIL:", p)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
