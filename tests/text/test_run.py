#!/usr/bin/env python3
"""`qnext run` end to end on a tiny random model over the real vocabulary (see textlib.py).

python3 test_run.py QNEXT CONFIG TOKENIZER_JSON

Expectations come from other commands, not from run itself: the prompt ids from `qnext tokenize` of the
ChatML text, greedy ids from `qnext generate`, text from `qnext detokenize`, and the stop token planted by
copying (x 1.05) the lm_head row of the token greedy decoding picks at step k into the row of <|im_end|>,
chosen with `qnext logits` so that it wins exactly at step k and nowhere before.
"""
import os
import sys

from textlib import ENDOFTEXT, IM_END, TextEnv, chatml, patch_lm_head_row, stats_numbers

t = TextEnv(sys.argv[1:])
check = t.check


def run(*args, stdin=b"", backend="cpu", model=None):
    return t.qn("run", "-m", model or t.model, "--backend", backend, *args, stdin=stdin)


def stats(err):
    return stats_numbers(err, "qnext run: ")


def cli_contract():
    rc, out, _ = t.qn("run", "--help")
    check(rc == 0 and b"usage: qnext run" in out and b"--presence-penalty" in out, "run --help")
    for args, why in [(["--temp", "-1"], "negative temperature"), (["--top-p", "0"], "top-p 0"),
                      (["--top-k", "x"], "top-k not a number"), (["--min-p", "2"], "min-p > 1"),
                      (["--ctx", "0"], "ctx 0"), (["--max-tokens", "0"], "max-tokens 0"),
                      (["--seed", "-3"], "negative seed"), (["--bogus"], "unknown option"),
                      (["-f", "x", "-p", "y"], "-p and -f"), (["--raw", "--system", "s", "-p", "y"], "--raw --system"),
                      (["-p", "y", "extra"], "stray argument")]:
        rc, _, err = run(*args)
        check(rc == 2 and err, f"{why}: rc {rc} {err!r}")


def greedy_matches_generate(backend, n=12, light=False):
    prompt = t.tokenize(chatml("Hello"))
    want_ids = t.greedy(t.model, prompt, n)
    want = t.detokenize(want_ids)
    rc, out, err = run("--temp", "0", "-p", "Hello", "--max-tokens", n, backend=backend)
    s = stats(err)
    check(rc == 0 and out == want, f"[{backend}] greedy run != generate+detokenize: rc {rc}\n {out!r}\n {want!r}\n{err}")
    check(s and s["prompt"] == len(prompt) and s["generated"] == n and s["stop"] == "max tokens"
          and s["context"] == len(prompt) + n, f"[{backend}] stats line: {err!r}")
    if light:
        return prompt
    # the same prompt from stdin, from a file, and raw (the template text given as is) gives the same text
    rc2, out2, _ = run("--temp", "0", "--max-tokens", n, stdin=b"Hello", backend=backend)
    check(rc2 == 0 and out2 == out, f"[{backend}] prompt from stdin differs: {out2!r}")
    path = os.path.join(t.tmp, "prompt.txt")
    with open(path, "wb") as f:
        f.write(b"Hello")
    rc2, out2, _ = run("--temp", "0", "--max-tokens", n, "-f", path, backend=backend)
    check(rc2 == 0 and out2 == out, f"[{backend}] prompt from -f differs: {out2!r}")
    rc2, out2, _ = run("--temp", "0", "--max-tokens", n, "--raw", "-p", chatml("Hello"), backend=backend)
    check(rc2 == 0 and out2 == out, f"[{backend}] --raw with the template text differs: {out2!r}")
    # a system turn changes the prompt (its length checked against tokenize)
    rc2, _, err2 = run("--temp", "0", "--max-tokens", 2, "--system", "Be terse.", "-p", "Hello", backend=backend)
    s2 = stats(err2)
    check(rc2 == 0 and s2 and s2["prompt"] == len(t.tokenize(chatml("Hello", "Be terse."))),
          f"[{backend}] --system prompt length: {err2!r}")
    return prompt


def seeds(backend, light=False):
    outs = {}
    n = 4 if light else 16
    for seed in (5, 5) if light else (5, 5, 6, 7):
        rc, out, err = run("--seed", seed, "-p", "Tell me a story", "--max-tokens", n, backend=backend)
        s = stats(err)
        check(rc == 0 and s and s["generated"] == n and out, f"[{backend}] sampled run seed {seed}: rc {rc} {err!r}")
        outs.setdefault(seed, []).append(out)
    check(outs[5][0] == outs[5][1], f"[{backend}] same seed, different text:\n {outs[5][0]!r}\n {outs[5][1]!r}")
    if light:
        return
    check(outs[6][0] != outs[5][0] or outs[7][0] != outs[5][0], f"[{backend}] seeds 5, 6, 7 all gave the same text")
    # other sampler paths: top-k off (full logits), presence penalty (256 candidates), min-p, greedy + penalty
    for args in (["--top-k", "0"], ["--presence-penalty", "1.5"], ["--min-p", "0.1", "--top-p", "1"],
                 ["--temp", "0", "--presence-penalty", "2"]):
        rc, out, err = run("--seed", 1, *args, "-p", "Hi", "--max-tokens", 8, backend=backend)
        s = stats(err)
        check(rc == 0 and s and s["generated"] == 8 and "may miss" not in err, f"[{backend}] {args}: rc {rc} {err!r}")
    rc1, out1, _ = run("--temp", "0", "--presence-penalty", "2", "-p", "Hi", "--max-tokens", 8, backend=backend)
    rc2, out2, _ = run("--temp", "0", "--presence-penalty", "2", "-p", "Hi", "--max-tokens", 8, "--seed", 99,
                       backend=backend)
    check(rc1 == 0 and out1 == out2, f"[{backend}] greedy with a penalty depends on the seed")


def plant_stop(prompt, n=10, scale=1.05):
    """Pick step k where copying the greedy token's lm_head row (x scale) into <|im_end|>'s row makes
    <|im_end|> win at k and never before; returns (k, greedy ids) or None."""
    g = t.greedy(t.model, prompt, n)
    rows = t.logits(t.model, prompt + g[:-1])[len(prompt) - 1:]
    for k in range(2, n - 1):
        tok = g[k]
        best = rows[k][tok]
        if g[:k + 1].count(IM_END) or g[:k + 1].count(ENDOFTEXT) or max(rows[k]) != best or best < 0.05:
            continue
        if all(scale * rows[j][tok] < max(rows[j]) - 1e-3 for j in range(k)):
            return k, g
    return None


def stop_tokens(prompt, backend, light=False):
    found = plant_stop(prompt)
    if not check(found, "no step of the greedy path can take a planted stop token"):
        return
    k, g = found
    print(f"[{backend}] planted stop tokens at greedy step {k} (token {g[k]})", flush=True)
    want = t.detokenize(g[:k])
    for stop_id, name in ((IM_END, "<|im_end|>"),) + (() if light else ((ENDOFTEXT, "<|endoftext|>"),)):
        folder = os.path.join(t.tmp, f"stop{stop_id}")
        if not os.path.exists(folder):
            t.make(folder, seed=7)
            patch_lm_head_row(folder, stop_id, g[k], 1.05)
        rc, out, err = run("--temp", "0", "-p", "Hello", "--max-tokens", 50, model=folder, backend=backend)
        s = stats(err)
        check(rc == 0 and out == want, f"[{backend}] {name} at step {k}: text {out!r}, want {want!r}; {err}")
        check(s and s["generated"] == k and s["stop"] == "stop token" and s["stop_token"] == name,
              f"[{backend}] {name} at step {k}: stats {err!r}")


def context_limits(prompt, backend, light=False):
    n = len(prompt)
    rc, out, err = run("--temp", "0", "-p", "Hello", "--ctx", n + 3, backend=backend)
    s = stats(err)
    check(rc == 0 and s and s["generated"] == 3 and s["stop"] == "context full" and s["context"] == n + 3,
          f"[{backend}] context full after 3 tokens: {err!r}")
    if light:  # the checks below happen before the engine opens
        return
    for ctx in (n, 5):
        rc, out, err = run("-p", "Hello", "--ctx", ctx, backend=backend)
        check(rc == 1 and f"the prompt has {n} tokens" in err and f"context of {ctx}" in err and not out,
              f"[{backend}] prompt longer than --ctx {ctx}: rc {rc} {err!r}")


def bad_input():
    bad = os.path.join(t.tmp, "bad.txt")
    with open(bad, "wb") as f:
        f.write(b"Hi \xff there")
    rc, out, err = run("-f", bad)
    check(rc == 1 and "not valid UTF-8" in err and "byte offset 3" in err and not out, f"invalid UTF-8 file: {err!r}")
    rc, _, err = run(stdin=b"ok \xc3")
    check(rc == 1 and "byte offset 3" in err, f"truncated UTF-8 on stdin: {err!r}")
    rc, _, err = run(stdin=b"a\x00b")
    check(rc == 1 and "NUL" in err and "byte offset 1" in err, f"NUL in the prompt: {err!r}")
    rc, _, err = run("-p", "")
    check(rc == 1 and "empty" in err, f"empty prompt: {err!r}")
    rc, _, err = run(stdin=b"")
    check(rc == 1 and "empty" in err, f"empty stdin: {err!r}")
    rc, _, err = run("-f", os.path.join(t.tmp, "nope.txt"))
    check(rc == 1 and "nope.txt" in err, f"missing prompt file: {err!r}")
    # tokenizer: missing from the folder, malformed, or of another vocabulary than the model's
    bare = os.path.join(t.tmp, "bare")
    os.makedirs(bare, exist_ok=True)
    for f in ("config.json", "model.safetensors"):
        if not os.path.exists(os.path.join(bare, f)):
            os.symlink(os.path.join(t.model, f), os.path.join(bare, f))
    rc, out, err = run("-p", "Hi", model=bare)
    check(rc == 1 and "tokenizer.json" in err and "-t FILE" in err and not out, f"no tokenizer.json: {err!r}")
    broken = os.path.join(t.tmp, "broken.json")
    with open(broken, "w") as f:
        f.write('{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [')
    rc, _, err = run("-p", "Hi", "-t", broken)
    check(rc == 1 and "broken.json" in err, f"malformed tokenizer.json: {err!r}")
    with open(broken, "w") as f:
        f.write("[1, 2, 3]")
    rc, _, err = run("-p", "Hi", "-t", broken)
    check(rc == 1 and "broken.json" in err, f"tokenizer.json of the wrong shape: {err!r}")
    rc, _, err = t.qn("run", "-m", os.path.join(os.path.dirname(__file__), "..", "data", "golden", "tiny"),
                      "--backend", "cpu", "-t", t.tokjson, "-p", "Hello")
    check(rc == 1 and "outside the model's vocabulary" in err, f"tokenizer larger than the model's vocabulary: {err!r}")
    rc, _, err = run("-p", "Hi", model=os.path.join(t.tmp, "no-such-model"))
    check(rc == 1 and "no-such-model" in err, f"missing model: {err!r}")


cli_contract()
bad_input()
prompt = greedy_matches_generate("cpu")
seeds("cpu")
stop_tokens(prompt, "cpu")
context_limits(prompt, "cpu")
if t.vulkan_ok():  # fewer and shorter runs: lavapipe takes about a second per token of this model
    greedy_matches_generate("vulkan", n=6, light=True)
    seeds("vulkan", light=True)
    stop_tokens(prompt, "vulkan", light=True)
    context_limits(prompt, "vulkan", light=True)
sys.exit(t.finish("text-run"))
