#!/usr/bin/env python3
"""Writes tests/fixtures/text/stories260K_sentencepiece.json: token ids that SentencePiece itself
gives with stories260K's tok512.model (the model tok512.bin was exported from), as an independent
reference for p4lm's llama2.c tokenizer. Needs `pip install sentencepiece` (used: 0.2.3).
Usage: python3 scripts/gen_llama2c_tokenizer_fixture.py  (from the repository root)
"""
import json

import sentencepiece as spm

MODEL = "data/tiny-lm/stories260K/tok512.model"
OUT = "tests/fixtures/text/stories260K_sentencepiece.json"

EDGE = [
    "", "a", " ", "  ", "Hello world", "Once upon a time", "a  b\n\nc", "\n", "\t tab",
    "Lily's mom said, \"No!\"", "It's 2023: 42 cats & 7 dogs.", "caf\u00e9 na\u00efve", "h\u00e9llo \u4e2d \U0001F600!",
    "\u0416\u0443\u043a", "x\u200by", "   leading and trailing   ", "<unk> <s> </s>", "ALL CAPS SHOUTING",
]


def main():
    sp = spm.SentencePieceProcessor(model_file=MODEL)
    with open("data/tiny-lm/stories260K/expected_greedy_200steps.txt", encoding="utf-8") as f:
        story = f.read()
    texts = EDGE + [s.strip() + "." for s in story.split(".") if s.strip()] + [story]
    # SentencePiece's normalizer (remove_extra_whitespaces) collapses runs of spaces and trims; run.c
    # does not. Records where the normalizer only adds the dummy prefix compare ids directly.
    records = [{"text": t, "ids": sp.encode(t),
                "same_normalization": t == "" or sp.normalize(t) == "\u2581" + t.replace(" ", "\u2581")}
               for t in texts]
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"source": f"sentencepiece {spm.__version__} on {MODEL}, add_bos=False",
                   "records": records}, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"{OUT}: {len(records)} records")


if __name__ == "__main__":
    main()
