#!/usr/bin/env python3
"""all-MiniLM-L6-v2 sentence embeddings per second: p4lm's bench_minilm_encode against
sentence-transformers on PyTorch (CPU), in alternated rounds (the order flips every round), on the
same pre-tokenized batches ([CLS], ids from the same generator, [SEP]; no padding; tokenization not
timed on either side). Prints every round, then the median, min and max of the per-round ratios
p4lm / PyTorch (docs/performance.md, "Sentence encoder").

    env -u OPENBLAS_CORETYPE /usr/bin/python3 benchmarks/peers/minilm_encode_peer.py \\
        --bench build/release/benchmarks/bench_minilm_encode --model models/all-minilm-l6-v2 \\
        --batch 32 --tokens 64 --threads 2 --rounds 7

Needs torch and sentence-transformers (the environment of scripts/fixtures/make_minilm_fixture.py).
Without --bench it measures PyTorch only.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer


def make_ids(batch, tokens):
    """bench_minilm_encode's ids: a 64-bit LCG (Knuth's MMIX constants), ids from its high bits."""
    ids, s, mask = [], 42, (1 << 64) - 1
    for _ in range(batch):
        row = [101]
        for _ in range(tokens - 2):
            s = (s * 6364136223846793005 + 1442695040888963407) & mask
            row.append(1000 + (s >> 33) % 29000)
        ids.append(row + [102])
    return torch.tensor(ids, dtype=torch.long)


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def torch_rate(model, features, batch, batches, repeats):
    with torch.inference_mode():
        first = model(dict(features))["sentence_embedding"]  # warm-up
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(batches):
                model(dict(features))["sentence_embedding"]
            best = min(best, time.perf_counter() - t0)
    return batch * batches / best, first


def p4lm_rate(bench, o):
    env = dict(os.environ, OMP_NUM_THREADS=str(o.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    out = subprocess.run([bench, "--model", o.model, "--batch", str(o.batch), "--tokens", str(o.tokens),
                          "--batches", str(o.batches), "--repeats", str(o.repeats), "--json"],
                         check=True, capture_output=True, text=True, env=env).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", help="bench_minilm_encode binary (omit: PyTorch only)")
    p.add_argument("--model", default=os.path.join(os.environ.get("P4LM_MODELS", "models"), "all-minilm-l6-v2"))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7)
    o = p.parse_args()
    if o.bench and o.rounds < 5:
        sys.exit("minilm_encode_peer: fewer than 5 rounds is not a measurement")
    torch.set_num_threads(o.threads)
    model = SentenceTransformer(o.model, device="cpu")
    model.eval()
    ids = make_ids(o.batch, o.tokens)
    features = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    print(f"cpu: {cpu_model()}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"sentence-transformers {sentence_transformers.__version__}; batch {o.batch} x {o.tokens} tokens", flush=True)
    if not o.bench:
        rate, _ = torch_rate(model, features, o.batch, o.batches, o.repeats)
        print(f"pytorch: {rate:.4g} sentences/s")
        return
    ratios, p4, pt = [], [], []
    for r in range(o.rounds):
        if r % 2 == 0:
            got = p4lm_rate(o.bench, o)
            rate, _ = torch_rate(model, features, o.batch, o.batches, o.repeats)
        else:
            rate, _ = torch_rate(model, features, o.batch, o.batches, o.repeats)
            got = p4lm_rate(o.bench, o)
        p4.append(got["sentences_per_s"])
        pt.append(rate)
        ratios.append(p4[-1] / pt[-1])
        print(f"round {r + 1}: p4lm {p4[-1]:.4g}  pytorch {pt[-1]:.4g} sentences/s  p4lm/pytorch {ratios[-1]:.3f}"
              f"  (OpenBLAS core {got['openblas_core']}, {got['omp_threads']} OpenMP threads)", flush=True)
    print(f"p4lm: median {statistics.median(p4):.4g} sentences/s (min {min(p4):.4g}, max {max(p4):.4g})")
    print(f"pytorch: median {statistics.median(pt):.4g} sentences/s (min {min(pt):.4g}, max {max(pt):.4g})")
    print(f"RESULT p4lm/pytorch sentences/s: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {o.rounds} alternated rounds")


if __name__ == "__main__":
    main()
