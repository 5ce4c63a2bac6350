#!/usr/bin/env python3
"""Scoring throughput of the P4LM reward mix (p4lm's bench_reward_mix_score) against the same encoder
work done by sentence-transformers' all-MiniLM-L6-v2 on PyTorch (CPU), in alternated rounds (the order
flips every round). Prints every round, then the median, min and max of the per-round ratios
p4lm pitches/s / PyTorch pitches/s (docs/performance.md, "Reward-mix scoring").

    env -u OPENBLAS_CORETYPE /usr/bin/python3 benchmarks/peers/reward_mix_encode_peer.py \\
        --bench build/release/benchmarks/bench_reward_mix_score --rewards runs/main/rewards \\
        --data runs/main/data --cf runs/main/cf/cf.safetensors --model models/all-minilm-l6-v2 \\
        --pitches runs/main/data/sft/test.jsonl --count 128 --batch 16 --threads 2 --rounds 5

The peer replays the encoder passes the mix makes (reward/text_features.hpp), on the texts the
benchmark writes with --dump-texts, with the same caches (a text or pair is encoded once per pass),
the same chunks of 32 texts, the same padding (each chunk to its longest) and truncation (256
tokens, pairs 160): per batch of pitches,
  precision        token states of each new premise and of each new pitch sentence (texts sorted by
                   length, as TextFeatures::tokens sorts them);
  appeal           the embedding of each new pitch;
  personalization  for each sentence of each pitch (a pitch without one: the empty text), the
                   cross-encoding [CLS] profile [SEP] sentence [SEP] of each new pair, then the
                   embeddings of each new profile and each new sentence (TextFeatures::pair_features);
  relevance        nothing new (the pitch's embedding is cached).
It does not run the four heads, the token-alignment rows, precision's soft minimum, personalization's
log-sum-exp or the CF dot product; p4lm's time includes them (and its own WordPiece tokenization, as
the peer's includes the Hugging Face tokenizer).

--passes tokenizes instead of encoding (no timing) and prints one line per encoder call of a pass,
"ENC kind rows padded_length tokens" (kind: tokens, single or pair), then the totals: the like-for-like
check against the calls p4lm makes.

Needs torch and sentence-transformers (Debian's /usr/bin/python3 here: torch 1.13, sentence-transformers 2.7).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

CHUNK = 32  # TextFeatures::batch_size


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def new_unique(items, seen):
    """Items not in `seen`, first occurrences in order; marks them seen (TextFeatures' caches)."""
    out = []
    for x in items:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out


def encode_chunks(model, items, kind, log=None, **kw):
    """Encodes items in TextFeatures' chunks; with a log, tokenizes them and records each call instead."""
    for s in range(0, len(items), CHUNK):
        chunk = items[s:s + CHUNK]
        if log is None:
            model.encode(chunk, batch_size=len(chunk), show_progress_bar=False, convert_to_numpy=False, **kw)
        else:
            mask = model.tokenize(chunk)["attention_mask"]
            log.append((kind, mask.shape[0], mask.shape[1], int(mask.sum())))


def torch_pass(model, texts, batch, log=None):
    """One pass over the pitches, batch at a time, with empty caches; returns seconds."""
    singles, tokens, pairs = set(), set(), set()
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(texts), batch):
            rows = texts[s:s + batch]
            # precision: premises, then sentences (one token-state cache, texts sorted by byte length)
            for group in ([r["premise"] for r in rows for _ in r["sentences"]],
                          [x for r in rows for x in r["sentences"]]):
                todo = sorted(new_unique(group, tokens), key=lambda t: len(t.encode()))
                encode_chunks(model, todo, "tokens", log, output_value="token_embeddings")
            # appeal: the pitches
            encode_chunks(model, new_unique([r["pitch"] for r in rows], singles), "single", log)
            # personalization: pair_features(profile, sentence) over every sentence: the cross-encodings,
            # then the profiles' and the sentences' embeddings (one cache with the pitches')
            profiles = [r["profile"] for r in rows for _ in (r["sentences"] or [""])]
            sentences = [x for r in rows for x in (r["sentences"] or [""])]
            todo = new_unique(list(zip(profiles, sentences)), pairs)
            model.max_seq_length = 160
            encode_chunks(model, [list(p) for p in todo], "pair", log)
            model.max_seq_length = 256
            encode_chunks(model, new_unique(profiles, singles), "single", log)
            encode_chunks(model, new_unique(sentences, singles), "single", log)
            # relevance: the pitches' embeddings are cached
            new_unique([r["pitch"] for r in rows], singles)
    return time.perf_counter() - t0


def print_passes(log):
    for kind, rows, length, toks in log:
        print(f"ENC {kind} {rows} {length} {toks}")
    for kind in ("tokens", "single", "pair"):
        calls = [c for c in log if c[0] == kind]
        print(f"total {kind}: {len(calls)} calls, {sum(c[1] for c in calls)} texts, "
              f"{sum(c[3] for c in calls)} tokens, {sum(c[1] * c[2] for c in calls)} padded")
    print(f"total: {len(log)} calls, {sum(c[1] for c in log)} texts, {sum(c[3] for c in log)} tokens, "
          f"{sum(c[1] * c[2] for c in log)} padded")


def bench_args(o):
    return [o.bench, "--rewards", o.rewards, "--data", o.data, "--cf", o.cf, "--encoder", o.model,
            "--pitches", o.pitches, "--count", str(o.count), "--batch", str(o.batch)]


def bench_env(o):
    env = dict(os.environ, OMP_NUM_THREADS=str(o.threads), OPENBLAS_NUM_THREADS=str(o.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    return env


def p4lm_pass(o):
    out = subprocess.run(bench_args(o) + ["--json"], check=True, capture_output=True, text=True,
                         env=bench_env(o)).stdout
    return json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="bench_reward_mix_score binary")
    p.add_argument("--rewards", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--cf", required=True)
    p.add_argument("--pitches", required=True)
    p.add_argument("--model", default=os.path.join(os.environ.get("P4LM_MODELS", "models"), "all-minilm-l6-v2"))
    p.add_argument("--count", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--passes", action="store_true", help="print the encoder calls of a pass; no timing")
    o = p.parse_args()
    if o.rounds < 5 and not o.passes:
        sys.exit("reward_mix_encode_peer: fewer than 5 rounds is not a measurement")
    torch.set_num_threads(o.threads)
    model = SentenceTransformer(o.model, device="cpu")
    model.eval()
    with tempfile.TemporaryDirectory() as tmp:  # the texts, written by the benchmark itself (untimed)
        path = os.path.join(tmp, "texts.jsonl")
        subprocess.run(bench_args(o) + ["--dump-texts", path, "--json"], check=True, capture_output=True,
                       env=bench_env(o))
        with open(path, encoding="utf-8") as f:
            texts = [json.loads(line) for line in f]
    if o.passes:
        log = []
        torch_pass(model, texts, o.batch, log)
        print_passes(log)
        return
    n_sent = sum(len(r["sentences"]) for r in texts)
    print(f"cpu: {cpu_model()}; torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"sentence-transformers {sentence_transformers.__version__}; {o.count} pitches "
          f"({n_sent} sentences, {len({r['premise'] for r in texts})} premises, "
          f"{len({r['profile'] for r in texts})} profiles) in batches of {o.batch}", flush=True)
    torch_pass(model, texts[:min(len(texts), o.batch)], o.batch)  # warm-up
    ratios, p4, pt = [], [], []
    for r in range(o.rounds):
        if r % 2 == 0:
            got = p4lm_pass(o)
            sec = torch_pass(model, texts, o.batch)
        else:
            sec = torch_pass(model, texts, o.batch)
            got = p4lm_pass(o)
        p4.append(got["pitches_per_s"])
        pt.append(o.count / sec)
        ratios.append(p4[-1] / pt[-1])
        print(f"round {r + 1}: p4lm {p4[-1]:.4g}  pytorch {pt[-1]:.4g} pitches/s  p4lm/pytorch {ratios[-1]:.3f}"
              f"  (OpenBLAS core {got['openblas_core']}, {got['omp_threads']} OpenMP threads)", flush=True)
    print(f"p4lm: median {statistics.median(p4):.4g} pitches/s (min {min(p4):.4g}, max {max(p4):.4g})")
    print(f"pytorch: median {statistics.median(pt):.4g} pitches/s (min {min(pt):.4g}, max {max(pt):.4g})")
    print(f"RESULT p4lm/pytorch pitches/s at batch {o.batch}: median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}) over {o.rounds} alternated rounds")


if __name__ == "__main__":
    main()
