#!/usr/bin/python3
"""Random-weight inputs for the same-run peers of issue 5 (benchmarks/peers/README.md).

Writes, under OUT (default /tmp/peers/inputs):

  llama2c/stories15M_random.bin   llama2.c checkpoint, Llama dim 288, hidden 768, 6 layers, 6 heads,
  llama2c/stories110M_random.bin  vocab 32000, seq_len 256; and dim 768, hidden 2048, 12 layers,
                                  12 heads, vocab 32000, seq_len 1024 (bench_lm_generate's 15M/110M)
  llama2c/tokenizer.bin           dummy llama2.c tokenizer for 32000 tokens
  llmc/gpt2_124M.bin              llm.c GPT-2 124M checkpoint (random init)
  llmc/gpt2_tokenizer.bin         dummy llm.c GPT-2 tokenizer for 50257 tokens
  llmc/dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin   random uint16 token files

Formats (all little-endian):

* llama2.c checkpoint (run.c, legacy "version 0" layout): 7 int32
  (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len); a positive vocab_size means
  the classifier shares the token embedding. Then float32 arrays in this order:
  token_embedding (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, dim, dim), wv (L, dim, dim),
  wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim), w2 (L, dim, hidden), w3 (L, hidden, dim),
  rms_final (dim), freq_cis_real (seq_len, head_size/2), freq_cis_imag (seq_len, head_size/2).
  Values: matrices N(0, 0.05) like bench_lm_generate's init_random(rng, 0.05), RMSNorm gains 1, the
  (unused by this run.c) RoPE tables cos/sin. Row 1 of the embedding (BOS) is zero so that the tied
  classifier gives token 1 a logit of exactly 0: run.c stops when greedy decoding emits BOS, and with
  every other logit random the argmax is then never 1, so each run produces the tokens asked for.
* llama2.c tokenizer: int32 max_token_length, then per token: float32 score, int32 len, len bytes.
  Token i is the text "t<i> " (score 0).
* llm.c checkpoint (train_gpt2.c, version 3): 256 int32 header
  [20240326, 3, max_seq_len 1024, vocab 50257, layers 12, heads 12, channels 768, padded vocab 50304],
  then float32 parameters in order wte (Vp, C), wpe (1024, C), ln1w (L, C), ln1b (L, C), qkvw (L, 3C, C),
  qkvb (L, 3C), attprojw (L, C, C), attprojb (L, C), ln2w, ln2b (L, C), fcw (L, 4C, C), fcb (L, 4C),
  fcprojw (L, C, 4C), fcprojb (L, C), lnfw (C), lnfb (C). Values: N(0, 0.02), residual projections
  N(0, 0.02/sqrt(2L)), biases 0, LayerNorm gains 1, padded wte rows 0 (bench_lm_train's init).
* llm.c tokenizer (version 2): 256 uint32 header [20240328, 2, vocab 50257, eot 50256], then per
  token: uint8 length (> 0), the bytes. Token i is "t<i> ".
* llm.c token file: 256 int32 header [20240520, 1, n_tokens], then n_tokens uint16 token ids,
  uniform random in [0, 50257).
"""
import argparse
import os
import struct

import numpy as np


def normal_block(rng, f, n, std, chunk=1 << 24):
    while n > 0:
        k = min(n, chunk)
        (rng.standard_normal(k, dtype=np.float32) * np.float32(std)).tofile(f)
        n -= k


def llama2c_checkpoint(path, dim, hidden, layers, heads, vocab, seq_len, rng):
    head_size = dim // heads
    with open(path, "wb") as f:
        f.write(struct.pack("7i", dim, hidden, layers, heads, heads, vocab, seq_len))
        emb = rng.standard_normal((vocab, dim), dtype=np.float32) * np.float32(0.05)
        emb[1, :] = 0.0
        emb.tofile(f)
        np.ones(layers * dim, np.float32).tofile(f)  # rms_att
        for _ in range(4):  # wq, wk, wv, wo
            normal_block(rng, f, layers * dim * dim, 0.05)
        np.ones(layers * dim, np.float32).tofile(f)  # rms_ffn
        for _ in range(3):  # w1, w2, w3
            normal_block(rng, f, layers * dim * hidden, 0.05)
        np.ones(dim, np.float32).tofile(f)  # rms_final
        freqs = 1.0 / (10000.0 ** (np.arange(0, head_size, 2, dtype=np.float32) / head_size))
        angles = np.outer(np.arange(seq_len, dtype=np.float32), freqs).astype(np.float32)
        np.cos(angles).astype(np.float32).tofile(f)
        np.sin(angles).astype(np.float32).tofile(f)


def llama2c_tokenizer(path, vocab):
    toks = [f"t{i} ".encode() for i in range(vocab)]
    with open(path, "wb") as f:
        f.write(struct.pack("i", max(len(t) for t in toks)))
        for t in toks:
            f.write(struct.pack("fi", 0.0, len(t)))
            f.write(t)


def llmc_checkpoint(path, rng, maxT=1024, V=50257, Vp=50304, L=12, NH=12, C=768):
    std, proj_std = 0.02, 0.02 / np.sqrt(2.0 * L)
    header = np.zeros(256, np.int32)
    header[:8] = [20240326, 3, maxT, V, L, NH, C, Vp]
    with open(path, "wb") as f:
        header.tofile(f)
        wte = np.zeros((Vp, C), np.float32)
        wte[:V] = rng.standard_normal((V, C), dtype=np.float32) * np.float32(std)
        wte.tofile(f)
        normal_block(rng, f, maxT * C, std)  # wpe
        np.ones(L * C, np.float32).tofile(f)  # ln1w
        np.zeros(L * C, np.float32).tofile(f)  # ln1b
        normal_block(rng, f, L * 3 * C * C, std)  # qkvw
        np.zeros(L * 3 * C, np.float32).tofile(f)  # qkvb
        normal_block(rng, f, L * C * C, proj_std)  # attprojw
        np.zeros(L * C, np.float32).tofile(f)  # attprojb
        np.ones(L * C, np.float32).tofile(f)  # ln2w
        np.zeros(L * C, np.float32).tofile(f)  # ln2b
        normal_block(rng, f, L * 4 * C * C, std)  # fcw
        np.zeros(L * 4 * C, np.float32).tofile(f)  # fcb
        normal_block(rng, f, L * C * 4 * C, proj_std)  # fcprojw
        np.zeros(L * C, np.float32).tofile(f)  # fcprojb
        np.ones(C, np.float32).tofile(f)  # lnfw
        np.zeros(C, np.float32).tofile(f)  # lnfb


def llmc_tokenizer(path, V=50257):
    header = np.zeros(256, np.uint32)
    header[:4] = [20240328, 2, V, V - 1]
    with open(path, "wb") as f:
        header.tofile(f)
        for i in range(V):
            t = f"t{i} ".encode()
            f.write(struct.pack("B", len(t)))
            f.write(t)


def llmc_tokens(path, n, rng, V=50257):
    header = np.zeros(256, np.int32)
    header[:3] = [20240520, 1, n]
    with open(path, "wb") as f:
        header.tofile(f)
        rng.integers(0, V, n, dtype=np.uint16).tofile(f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", nargs="?", default="/tmp/peers/inputs")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    l2 = os.path.join(a.out, "llama2c")
    lm = os.path.join(a.out, "llmc")
    data = os.path.join(lm, "dev", "data", "tinyshakespeare")
    for d in (l2, data):
        os.makedirs(d, exist_ok=True)
    llama2c_checkpoint(os.path.join(l2, "stories15M_random.bin"), 288, 768, 6, 6, 32000, 256, rng)
    llama2c_checkpoint(os.path.join(l2, "stories110M_random.bin"), 768, 2048, 12, 12, 32000, 1024, rng)
    llama2c_tokenizer(os.path.join(l2, "tokenizer.bin"), 32000)
    llmc_checkpoint(os.path.join(lm, "gpt2_124M.bin"), rng)
    llmc_tokenizer(os.path.join(lm, "gpt2_tokenizer.bin"))
    llmc_tokens(os.path.join(data, "tiny_shakespeare_train.bin"), 1 << 16, rng)
    llmc_tokens(os.path.join(data, "tiny_shakespeare_val.bin"), 1 << 15, rng)
    for root, _, files in os.walk(a.out):
        for name in sorted(files):
            p = os.path.join(root, name)
            print(f"{os.path.getsize(p):>12} {p}")


if __name__ == "__main__":
    main()
