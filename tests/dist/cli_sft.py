#!/usr/bin/env python3
"""`mpirun -np 2 p4lm sft --batch-size 4` against `p4lm sft --batch-size 8` (ctest dist/cli_sft).

A tiny data folder (24 pitches of 6 users, a 16-wide CF model written here) and the bundled
stories260K base; both stages (2 steps of adapters, 4 of everything) with a link weight that switches
at global step 3. Checked:
  - the two-rank run logs the one-process losses (1e-5 relative; a record per stage), prints its
    summary once, and ends with the one-process model: held-out test loss within 1e-4 relative, and
    parameters (model.safetensors, 270,528 values) with an RMS difference <= 1e-5, at most 0.1% of
    them more than 1e-5 apart and none more than 2e-3;
  - resume on another number of ranks with the same global batch: 2 ranks stopped at step 3 and
    resumed as one process of batch 8, and the other way round, end at the uninterrupted model (the
    same bounds).
The bounds are float32 summation order (the ranks' gradients are summed by MPI) as AdamW amplifies
it: the first step of a fresh AdamW moves every parameter by about +-lr whatever the size of its
gradient, so a gradient component that rounding leaves near zero can land anywhere in [-lr, lr]
(stage 1 starts one, stage 2 another). Measured: RMS 1.0e-6, 90 values over 1e-5, at most 4.4e-4
(in layers.1.feed_forward.w1, lr 3e-3). Before the ranks' gradients were weighted by their share of
the pitch tokens (StepLoss::weight), the two-rank run was off by 0.037.

    cli_sft.py <p4lm> <workdir> <launcher...>
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys
from array import array

from cli_common import losses, tensors


def write_safetensors(path, tensors):
    header, blob = {"__metadata__": {"format": "p4lm.cf.embeddings"}}, b""
    for name, (shape, values) in tensors.items():
        data = array("f", values).tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(blob), len(blob) + len(data)]}
        blob += data
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + blob)


def make_data(work):
    users, movies, dim = 6, 4, 16
    rng = random.Random(7)
    write_safetensors(os.path.join(work, "cf.safetensors"), {
        "user_factors": ([users, dim], [rng.gauss(0, 1) for _ in range(users * dim)]),
        "item_factors": ([movies, dim], [rng.gauss(0, 1) for _ in range(movies * dim)]),
        "user_bias": ([users], [0.0] * users),
        "item_bias": ([movies], [0.0] * movies),
        "global_mean": ([1], [3.5])})
    tastes = ["funny dogs", "big ships", "quiet forests", "loud trains", "small cats", "bright stars"]
    splits = {"train": [], "val": [], "test": []}
    for u in range(users):
        for m in range(movies):
            link = f"Because you love {tastes[u]}, this one is for you."
            pitch = f"Film {m} is a tale of a girl and her friend. {link}"
            record = {"user_id": u, "movie_id": m, "rating": 4.0, "title": f"Film {m}", "year": 2000 + m,
                      "genres": ["Drama"], "overview": f"A girl meets a friend in town {m}.",
                      "profile": f"Likes {tastes[u]}.", "pitch": pitch, "facts": [], "claims": [], "defects": [],
                      "link_span": [pitch.index(link), len(pitch)]}
            split = "test" if (u + m) % 6 == 0 else "val" if (u + m) % 6 == 1 else "train"
            splits[split].append(record)
    os.makedirs(os.path.join(work, "data", "sft"))
    for split, records in splits.items():
        with open(os.path.join(work, "data", "sft", split + ".jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


def main():
    p4lm, work, launcher = sys.argv[1], sys.argv[2], sys.argv[3:]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    make_data(work)
    common = ["sft", "--data", os.path.join(work, "data"), "--cf", os.path.join(work, "cf.safetensors"),
              "--base", "stories260K", "--stage1-steps", "2", "--stage2-steps", "4", "--warmup-steps", "1",
              "--stage1-lr", "1e-2", "--stage2-lr", "3e-3", "--stage2-adapter-lr", "1e-2", "--link-weight", "5",
              "--link-weight-steps", "3", "--link-weight-after", "1", "--eval-every", "0", "--eval-examples", "4",
              "--checkpoint-every", "1", "--progress", "false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    problems = []

    def run(out, ranks, batch, *extra):
        prefix = launcher if ranks == 2 else []
        r = subprocess.run([*prefix, p4lm, *common, "--batch-size", str(batch), "--out", out, *extra], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.exit(f"FAIL: {' '.join(r.args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
        return r.stdout

    def compare(label, reference, folder):
        ta, tb = tensors(os.path.join(reference, "model.safetensors")), tensors(os.path.join(folder, "model.safetensors"))
        if ta.keys() != tb.keys():
            problems.append(f"{label}: the models hold different tensors")
            return
        diffs = [abs(x - y) for k in ta for x, y in zip(ta[k], tb[k])]
        worst, rms = max(diffs), (sum(d * d for d in diffs) / len(diffs)) ** 0.5
        apart = sum(1 for d in diffs if d > 1e-5)
        ra, rb = (json.load(open(os.path.join(f, "result.json")))["test_loss"] for f in (reference, folder))
        print(f"{label}: parameters: max |difference| {worst:.3g}, RMS {rms:.3g}, {apart} of {len(diffs)} "
              f"over 1e-5; test loss {ra:.7f} vs {rb:.7f}")
        if rms > 1e-5 or apart > 1e-3 * len(diffs) or worst > 2e-3:
            problems.append(f"{label}: parameters differ (max {worst}, RMS {rms}, {apart} over 1e-5)")
        if abs(ra - rb) > 1e-4 * abs(ra):
            problems.append(f"{label}: test loss {rb}, one process {ra}")

    one, two = os.path.join(work, "one"), os.path.join(work, "two")
    out_one = run(one, 1, 8)
    out_two = run(two, 2, 4)
    a, b = losses(one, "train_metrics.jsonl"), losses(two, "train_metrics.jsonl")
    if len(a) != 2 or len(b) != 2:  # one record at the end of each stage
        problems.append(f"train_metrics records: {len(a)} (one process) and {len(b)} (two ranks), expected 2 each")
    for step, (x, y) in enumerate(zip(a, b), 1):
        if abs(x - y) > 1e-5 * abs(x):
            problems.append(f"step {step}: loss {x} (one process) vs {y} (two ranks)")
    if out_one.count("sft (cf") != 1 or out_two.count("sft (cf") != 1:
        problems.append("each run should print its summary once (rank 0 alone prints)")
    compare("2 ranks x batch 4 vs 1 process x batch 8", one, two)
    if abs(a[-1] - a[0]) < 1e-3:
        problems.append("the loss did not move: the runs trained nothing")

    # Resume with another number of ranks, same global batch.
    for label, first, second in (("2 ranks to step 3, then 1 process", (2, 4), (1, 8)),
                                 ("1 process to step 3, then 2 ranks", (1, 8), (2, 4))):
        folder = os.path.join(work, "resume_%d_%d" % (first[0], second[0]))
        run(folder, *first, "--stop-after", "3")
        if os.path.exists(os.path.join(folder, "model.safetensors")):
            problems.append(f"{label}: a stopped run wrote model.safetensors")
        run(folder, *second)
        compare(label, one, folder)
        c = losses(folder, "train_metrics.jsonl")
        if len(c) != 2 or any(abs(x - y) > 1e-5 * abs(x) for x, y in zip(a, c)):
            problems.append(f"{label}: logged losses {c}, uninterrupted {a}")
    for p in problems:
        print("FAIL:", p)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
