#!/usr/bin/env python3
"""SmolLM2-135M-Instruct decoding against llama.cpp on the same GGUF file, in alternated rounds.

Per round and thread count it runs p4lm's bench_lm_generate (the GGUF dequantized to fp32; one
sequence and a batch) and llama.cpp's llama-bench (`-p 0 -n TOKENS`: one sequence generating straight
from the file's Q4_1/Q8_0 weights), in an order that flips every round, all under
`env -u OPENBLAS_CORETYPE OMP_NUM_THREADS=T OPENBLAS_NUM_THREADS=T` and llama-bench `-t T`. Each side
reports the best of `--repeats` timed runs after its own warm-up. Prints every round, then per
configuration the median (min, max) of the per-round ratios to llama.cpp, each side's median tokens/s,
and the bytes of weights streamed per token against the read bandwidth that bench_lm_generate measures
in the same process (a 256 MB buffer summed by the same threads): p4lm reads its fp32 weights once per
step, llama.cpp the GGUF's tensor bytes (llama-bench's `model_size`). docs/performance.md,
"SmolLM2-135M-Instruct".

    python3 benchmarks/peers/alternate_smollm2_decode.py \\
        --bench build/release/benchmarks/bench_lm_generate \\
        --llama-bench LLAMA_CPP_BUILD/bin/llama-bench \\
        --model models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf --threads 1,2 --rounds 5
"""
import argparse
import hashlib
import os
import statistics
import sys

from alternate_ab import run_json


def env_for(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.pop("OPENBLAS_CORETYPE", None)  # set on this machine, it halves OpenBLAS's GEMM speed
    return env


def p4lm_run(o, threads, batch):
    return run_json(o.bench, ["--model", o.model, "--batch", str(batch), "--tokens", str(o.tokens),
                              "--repeats", str(o.repeats), "--json"], env_for(threads))


def llama_run(o, threads):
    got = run_json(o.llama_bench, ["-m", o.model, "-p", "0", "-n", str(o.tokens), "-t", str(threads),
                                   "-r", str(o.repeats), "-o", "jsonl"], env_for(threads))
    if got.get("n_gen") != o.tokens or got.get("n_threads") != threads:
        sys.exit(f"alternate_smollm2_decode: llama-bench ran n_gen={got.get('n_gen')}, "
                 f"n_threads={got.get('n_threads')}")
    got["best_ts"] = max(got["samples_ts"])  # the best of the repeats, as bench_lm_generate reports
    return got


def measure(o, name, threads):
    """One of the round's three measurements: p4lm_b1, p4lm_b<batch> or llama_b1."""
    if name == "llama_b1":
        return llama_run(o, threads)
    return p4lm_run(o, threads, int(name.removeprefix("p4lm_b")))


def spread(values, fmt):
    return f"median {statistics.median(values):{fmt}} (min {min(values):{fmt}}, max {max(values):{fmt}})"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench", required=True, help="bench_lm_generate binary")
    p.add_argument("--llama-bench", required=True, help="llama.cpp's llama-bench binary")
    p.add_argument("--model", required=True, help="the SmolLM2 GGUF file both sides read")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--batch", type=int, default=16, help="p4lm's batch (beside one sequence)")
    p.add_argument("--tokens", type=int, default=64, help="new tokens per sequence")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (best kept)")
    p.add_argument("--rounds", type=int, default=5)
    o = p.parse_args()
    if o.rounds < 5:
        sys.exit("alternate_smollm2_decode: fewer than 5 rounds is not a measurement")
    threads = [int(t) for t in o.threads.split(",")]
    with open(o.model, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    print(f"model {o.model} (sha256 {sha}); {o.tokens} new tokens, p4lm batch 1 and {o.batch}, "
          f"best of {o.repeats} per measurement, {o.rounds} rounds", flush=True)
    names = ["p4lm_b1", f"p4lm_b{o.batch}", "llama_b1"]
    rows = {t: [] for t in threads}
    for r in range(o.rounds):
        for t in threads:
            order = names if r % 2 == 0 else names[::-1]
            got = {name: measure(o, name, t) for name in order}
            if r == 0 and t == threads[0]:
                lb, pb = got["llama_b1"], got["p4lm_b1"]
                print(f"cpu: {lb['cpu_info']}; llama.cpp {lb['build_commit']} (build {lb['build_number']}, "
                      f"{lb['backends']}, model_size {lb['model_size']} bytes, {lb['model_n_params']} params); "
                      f"p4lm: {pb['params']} params, {pb['weight_bytes_per_step']:.0f} bytes of fp32 weights per "
                      f"step, OpenBLAS core {pb['openblas_core']}", flush=True)
            pb1, pbn, lb = got["p4lm_b1"], got[f"p4lm_b{o.batch}"], got["llama_b1"]
            read = (pb1["read_gb_per_s"] + pbn["read_gb_per_s"]) / 2
            row = {"p4lm_b1": pb1["tokens_per_s"], "p4lm_bn": pbn["tokens_per_s"], "llama": lb["best_ts"],
                   "read": read, "p4lm_gb_s": pb1["weights_gb_per_s"],
                   "p4lm_share": pb1["weights_gb_per_s"] / pb1["read_gb_per_s"],
                   "llama_gb_s": lb["model_size"] * lb["best_ts"] / 1e9, "llama_bytes": lb["model_size"],
                   "p4lm_bytes": pb1["weight_bytes_per_step"]}
            row["llama_share"] = row["llama_gb_s"] / read
            rows[t].append(row)
            print(f"round {r + 1}, {t} thread(s): p4lm b1 {row['p4lm_b1']:.1f}  p4lm b{o.batch} {row['p4lm_bn']:.1f}  "
                  f"llama.cpp b1 {row['llama']:.1f} tokens/s; b1/llama {row['p4lm_b1'] / row['llama']:.3f}  "
                  f"b{o.batch}/llama {row['p4lm_bn'] / row['llama']:.3f}; read {pb1['read_gb_per_s']:.1f}, "
                  f"{pbn['read_gb_per_s']:.1f} GB/s; streamed p4lm {pb1['weights_gb_per_s']:.1f}, "
                  f"llama.cpp {row['llama_gb_s']:.1f} GB/s", flush=True)
    for t in threads:
        rs = rows[t]
        print(f"\n{t} thread(s), {o.rounds} alternated rounds:")
        print(f"  p4lm b1: {spread([x['p4lm_b1'] for x in rs], '.1f')} tokens/s")
        print(f"  p4lm b{o.batch}: {spread([x['p4lm_bn'] for x in rs], '.1f')} tokens/s")
        print(f"  llama.cpp b1: {spread([x['llama'] for x in rs], '.1f')} tokens/s")
        print(f"  RESULT p4lm b1 / llama.cpp b1: {spread([x['p4lm_b1'] / x['llama'] for x in rs], '.3f')}")
        print(f"  RESULT p4lm b{o.batch} / llama.cpp b1: {spread([x['p4lm_bn'] / x['llama'] for x in rs], '.3f')}")
        print(f"  read bandwidth (256 MB, {t} thread(s)): {spread([x['read'] for x in rs], '.1f')} GB/s")
        print(f"  p4lm b1 streams {rs[0]['p4lm_bytes'] / 1e6:.1f} MB per token, "
              f"{spread([x['p4lm_gb_s'] for x in rs], '.1f')} GB/s: "
              f"{spread([x['p4lm_share'] for x in rs], '.3f')} of its run's read bandwidth")
        print(f"  llama.cpp b1 streams {rs[0]['llama_bytes'] / 1e6:.1f} MB per token, "
              f"{spread([x['llama_gb_s'] for x in rs], '.1f')} GB/s: "
              f"{spread([x['llama_share'] for x in rs], '.3f')} of the round's read bandwidth")


if __name__ == "__main__":
    main()
