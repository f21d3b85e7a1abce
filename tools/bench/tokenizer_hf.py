#!/usr/bin/env python3
"""Hugging Face `tokenizers` as the peer of qnext's tokenizer: speed on the same text, and agreement.

  python3 tokenizer_hf.py TOKENIZER_JSON --bench TEXT_FILE [--repeat N] [--compare IDS_JSON]
  python3 tokenizer_hf.py TOKENIZER_JSON --check CASES_JSON

--bench     encodes the whole file as one string (what `qnext tokenize --bench` does: one thread),
            then line by line with encode_batch (HF's own thread pool), and decodes; prints MB/s.
--compare   ids from `qnext tokenize -t TOKENIZER_JSON --json --stdin < TEXT_FILE > IDS_JSON`;
            reports whether HF's ids are identical (and the first difference if not).
--check     a cases file like tests/data/tokenizer_hard_cases.json: {"cases": [{"text", "ids",
            "decoded"}]}; prints each case whose ids or decoded text differ from HF's. Exit 1 if any.
Make a text with: python3 make_bench_text.py /tmp/bench.txt   (10 MB, mixed scripts)
"""
import argparse
import json
import os
import sys
import time

from tokenizers import Tokenizer


def bench(tok, path, repeat, compare):
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    mb = len(text.encode()) / 1e6
    best, ids = 1e30, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    lines = text.splitlines(keepends=True)
    t0 = time.perf_counter()
    tok.encode_batch(lines, add_special_tokens=False)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    tok.decode(ids, skip_special_tokens=False)
    t_dec = time.perf_counter() - t0
    print(f"file        {path}: {mb:.2f} MB, {len(ids)} tokens")
    print(f"hf encode   {mb / best:.2f} MB/s (one string, best of {repeat}; {best:.3f} s)")
    print(f"hf batch    {mb / t_batch:.2f} MB/s (encode_batch of {len(lines)} lines, "
          f"{os.environ.get('RAYON_NUM_THREADS', 'all')} threads)")
    print(f"hf decode   {mb / t_dec:.2f} MB/s")
    if compare:
        with open(compare) as f:
            mine = json.load(f)
        if mine == ids:
            print(f"compare     identical ({len(ids)} ids)")
            return 0
        i = next((k for k, (a, b) in enumerate(zip(mine, ids)) if a != b), min(len(mine), len(ids)))
        print(f"compare     DIFFERENT: qnext {len(mine)} ids, hf {len(ids)}; first difference at {i}: "
              f"qnext {mine[i:i + 8]} hf {ids[i:i + 8]}")
        return 1
    return 0


def check(tok, path):
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    bad = 0
    for i, c in enumerate(cases):
        ids = tok.encode(c["text"], add_special_tokens=False).ids
        dec = tok.decode(c["ids"], skip_special_tokens=False)
        if ids != c["ids"] or dec != c["decoded"]:
            bad += 1
            print(f"case {i} {c['text'][:40]!r}: ids {'ok' if ids == c['ids'] else ids} decoded "
                  f"{'ok' if dec == c['decoded'] else repr(dec[:40])}")
    print(f"{len(cases) - bad} passed, {bad} failed")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tokenizer")
    ap.add_argument("--bench")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compare")
    ap.add_argument("--check")
    a = ap.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)
    if a.check:
        return check(tok, a.check)
    if a.bench:
        return bench(tok, a.bench, a.repeat, a.compare)
    ap.error("give --bench FILE or --check FILE")
    return 2


if __name__ == "__main__":
    sys.exit(main())
