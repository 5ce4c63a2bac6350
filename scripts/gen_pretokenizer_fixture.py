#!/usr/bin/env python3
"""Writes tests/fixtures/text/gpt2_pretokenizer_random.jsonl: random strings split by GPT-2's
pre-tokenizer pattern as run by the Python `regex` module (the reference engine). The strings mix
ASCII, contractions and the first and last code point of every run of the generated Unicode class
table, so each range boundary of include/p4lm/text/detail/unicode_classes.hpp is exercised.
Usage: python3 scripts/gen_pretokenizer_fixture.py  (from the repository root; seed fixed)
"""
import json
import random
import re

import regex

PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
TABLE = "include/p4lm/text/detail/unicode_classes.hpp"
OUT = "tests/fixtures/text/gpt2_pretokenizer_random.jsonl"


def boundary_code_points():
    runs = [int(x, 16) >> 2 for x in re.findall(r"0x([0-9a-f]{8})u", open(TABLE).read())]
    points = set()
    for i, start in enumerate(runs):
        end = (runs[i + 1] if i + 1 < len(runs) else 0x110000) - 1
        points.update({start, end})
    return sorted(p for p in points if not 0xD800 <= p <= 0xDFFF)


def main():
    rng = random.Random(20231006)
    boundaries = [chr(p) for p in boundary_code_points()]
    ascii_pool = list("abcXYZ019 '\t\n\r!?.,-_\"") + ["'s", "'ll", "'ve", "'re", "'d", "'m", "'t", "  ", " \n"]
    with open(OUT, "w", encoding="utf-8") as f:
        for _ in range(1500):
            parts = [rng.choice(boundaries) if rng.random() < 0.45 else rng.choice(ascii_pool)
                     for _ in range(rng.randint(1, 16))]
            text = "".join(parts)
            f.write(json.dumps({"text": text, "pieces": PATTERN.findall(text)}, ensure_ascii=True) + "\n")
    print(f"{OUT}: 1500 strings over {len(boundaries)} boundary code points (regex {regex.__version__})")


if __name__ == "__main__":
    main()
