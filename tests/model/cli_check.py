#!/usr/bin/env python3
"""cli_check.py QNEXT FIXTURE_DIR — the `qnext logits` / `qnext generate` contract, end to end.

Runs the command lines the acceptance checks use and compares with Hugging Face's outputs in
FIXTURE_DIR/expected.safetensors (read here with the standard library only, no numpy):
  qnext logits -m DIR --tokens ... --backend cpu -o x.npy  -> float32 [T, vocab], relative L2 < 1e-4
  qnext generate -m DIR --tokens ... -n N --greedy --backend cpu --ids -> HF's greedy ids, one line
and that bad invocations (id out of range, unknown --device, missing -o) fail with a clear message.
An optional third argument picks the backend of the positive runs: cpu (default, tolerance 1e-4) or vulkan (1e-3).
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, read_safetensors, rel_l2, report  # noqa: E402


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


def main():
    qnext, fixture = sys.argv[1], sys.argv[2]
    backend = sys.argv[3] if len(sys.argv) > 3 else "cpu"   # "vulkan": the GPU forward pass, f32 compute
    tol = 1e-4 if backend == "cpu" else 1e-3
    exp = read_safetensors(os.path.join(fixture, "expected.safetensors"))
    ids = list(exp["prefill0.input_ids"][1])
    want = exp["prefill0.logits"][1]
    vocab = exp["prefill0.logits"][0][1]
    tok = ",".join(str(i) for i in ids)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.npy")
        rc, so, se = run([qnext, "logits", "-m", fixture, "--tokens", tok, "--backend", backend, "-o", out])
        report(rc == 0, "qnext logits --backend %s exits 0 (%s)" % (backend, se.strip()[:200]))
        if rc == 0:
            shape, got = read_npy(out)
            report(shape == (len(ids), vocab), "logits .npy shape %s == (%d, %d)" % (shape, len(ids), vocab))
            err = rel_l2(got, want)
            report(err < tol, "logits vs HF prefill0: relative L2 %.3e (tolerance %.0e)" % (err, tol))
        rc, so, se = run([qnext, "logits", "-m", fixture, "--tokens", tok, "--backend", backend, "-o", out, "--last"])
        if rc == 0:
            shape, got = read_npy(out)
            err = rel_l2(got, want[-vocab:])
            report(shape == (1, vocab) and err < tol, "logits --last: shape %s, relative L2 %.3e" % (shape, err))
        else:
            report(False, "qnext logits --last exits 0 (%s)" % se.strip()[:200])

        prompt = ",".join(str(i) for i in exp["greedy.prompt"][1])
        toks = list(exp["greedy.tokens"][1])
        rc, so, se = run([qnext, "generate", "-m", fixture, "--tokens", prompt, "-n", str(len(toks)), "--greedy",
                          "--backend", backend, "--ids"])
        lines = so.splitlines()
        got = [int(x) for x in lines[0].split()] if rc == 0 and len(lines) == 1 else None
        report(got == toks, "generate --ids: one line, %d ids identical to HF's greedy tokens (got %s)" % (len(toks), got))

        bad = [
            (["logits", "-m", fixture, "--tokens", "1,%d" % vocab, "--backend", "cpu", "-o", out], "outside the vocabulary"),
            (["generate", "-m", fixture, "--tokens", "-1", "-n", "2", "--backend", "cpu", "--ids"], "outside the vocabulary"),
            (["logits", "-m", fixture, "--tokens", "1,2", "--backend", "vulkan", "--device", "no-such-gpu", "-o", out],
             "no-such-gpu"),
            (["logits", "-m", fixture, "--tokens", "1,2", "--backend", "cpu"], "no output file"),
            (["logits", "-m", os.path.join(tmp, "nowhere"), "--tokens", "1", "--backend", "cpu", "-o", out], "nowhere"),
            (["generate", "-m", fixture, "--tokens", "1,2", "--backend", "cpu"], "-n N"),
        ]
        for args, needle in bad:
            rc, so, se = run([qnext] + args)
            report(rc != 0 and rc < 128 and needle in se,
                   "bad input %s -> exit %d, message %r" % (" ".join(args[:1] + args[3:5]), rc, se.strip()[:160]))
        for cmd in ("logits", "generate"):
            rc, so, se = run([qnext, cmd, "--help"])
            report(rc == 0 and "--tokens" in so and "--backend" in so, "qnext %s --help" % cmd)
    print("%d failure(s)" % testlib.failures)
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
