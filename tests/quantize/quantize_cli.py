#!/usr/bin/env python3
"""`qnext quantize` end to end (helper "quantize").

- tiny -> f32 GGUF -> `qnext logits --backend cpu -m file.gguf` equals the same command on the HF folder (1e-5);
- tiny -> q4_k_m (hidden 128 does not fit a 256 block): says how many tensors fell back, -v names them;
- errors: not a qwen3_next folder (other model_type; no config), existing output without --force (file left
  untouched; --force then works), bad --type, missing --type; a failed run leaves no output;
- tiny -> q8_0: the CPU reference on the GGUF == the Vulkan forward on it (lavapipe; 1e-3, measured 2.3e-5);
- Ctrl-C during a slow (q4_k_m, one thread) conversion of a synthesized checkpoint: exit 130, no output left.
Usage: quantize_cli.py QNEXT GOLDEN_DIR"""
import json
import os
import signal
import time
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, report  # noqa: E402


def run(*args):
    return subprocess.run([QNEXT, *args], capture_output=True, text=True, timeout=240)


def main():
    tiny = os.path.join(GOLDEN, "tiny")
    toks = ",".join(str((i * 37 + 11) % 512) for i in range(12))
    with tempfile.TemporaryDirectory() as tmp:
        g = os.path.join(tmp, "t.gguf")
        r = run("quantize", "-m", tiny, "-o", g, "--type", "f32", "--no-progress")
        report(r.returncode == 0 and os.path.exists(g) and "MB/s of input" in r.stdout, "tiny f32: " + r.stdout.strip())
        a, b = os.path.join(tmp, "a.npy"), os.path.join(tmp, "b.npy")
        r1 = run("logits", "-m", tiny, "--backend", "cpu", "--tokens", toks, "-o", a)
        r2 = run("logits", "-m", g, "--backend", "cpu", "--tokens", toks, "-o", b)
        ok = r1.returncode == 0 and r2.returncode == 0
        d = max(abs(x - y) for x, y in zip(read_npy(a)[1], read_npy(b)[1])) if ok else float("inf")
        report(ok and d <= 1e-5, "logits --backend cpu on the f32 GGUF == on the HF folder: max |d| %.3g %s" % (d, r2.stderr.strip()))

        q = os.path.join(tmp, "q.gguf")
        r = run("quantize", "-m", tiny, "-o", q, "--type", "q4_k_m", "-v")
        lines = [l for l in r.stdout.splitlines() if l.startswith("  blk.") or l.startswith("  token_embd") or l.startswith("  output")]
        said = [l for l in r.stdout.splitlines() if "fell back" in l]
        n = int(said[0].split(": ")[1].split()[0]) if said else 0
        report(r.returncode == 0 and n > 0 and len(lines) == n, "q4_k_m on hidden 128: %d fallbacks said, %d named" % (n, len(lines)))

        q8 = os.path.join(tmp, "q8.gguf")
        r = run("quantize", "-m", tiny, "-o", q8, "--type", "q8_0")
        c, v = os.path.join(tmp, "c.npy"), os.path.join(tmp, "v.npy")
        r1 = run("logits", "-m", q8, "--backend", "cpu", "--tokens", toks, "-o", c)
        r2 = run("logits", "-m", q8, "--backend", "vulkan", "--tokens", toks, "-o", v)
        ok = r.returncode == 0 and r1.returncode == 0 and r2.returncode == 0
        d = max(abs(x - y) for x, y in zip(read_npy(c)[1], read_npy(v)[1])) if ok else float("inf")
        report(ok and d <= 1e-3, "q8_0 GGUF: CPU reference vs Vulkan forward: max |d| %.3g %s" % (d, r2.stderr.strip()[-300:]))

        before = open(q, "rb").read()
        r = run("quantize", "-m", tiny, "-o", q, "--type", "q8_0")
        report(r.returncode != 0 and "--force" in r.stderr and open(q, "rb").read() == before,
               "existing output refused without --force: " + r.stderr.strip())
        r = run("quantize", "-m", tiny, "-o", q, "--type", "q8_0", "--force")
        report(r.returncode == 0 and open(q, "rb").read() != before, "--force replaces it")

        r = run("quantize", "-m", tiny, "-o", os.path.join(tmp, "x.gguf"), "--type", "q3_z")
        report(r.returncode == 2 and "q3_z" in r.stderr and not os.path.exists(os.path.join(tmp, "x.gguf")),
               "bad --type: " + r.stderr.strip().splitlines()[0])
        r = run("quantize", "-m", tiny, "-o", os.path.join(tmp, "x.gguf"))
        report(r.returncode == 2, "missing --type refused")

        other = os.path.join(tmp, "llama")
        os.mkdir(other)
        cfg = json.load(open(os.path.join(tiny, "config.json")))
        cfg["model_type"] = "llama"
        json.dump(cfg, open(os.path.join(other, "config.json"), "w"))
        r = run("quantize", "-m", other, "-o", os.path.join(tmp, "x.gguf"), "--type", "q8_0")
        report(r.returncode != 0 and "qwen3_next" in r.stderr and not os.path.exists(os.path.join(tmp, "x.gguf")),
               "not a qwen3_next folder: " + r.stderr.strip())
        empty = os.path.join(tmp, "empty")
        os.mkdir(empty)
        r = run("quantize", "-m", empty, "-o", os.path.join(tmp, "x.gguf"), "--type", "q8_0")
        report(r.returncode != 0 and not os.path.exists(os.path.join(tmp, "x.gguf")), "empty folder: " + r.stderr.strip())
        big, bg = os.path.join(tmp, "big"), os.path.join(tmp, "big.gguf")
        r = run("synth", "-o", big, "--layers", "1", "--experts", "8", "--top-k", "2", "--vocab", "4000", "--no-progress", "--no-sync",
                "--shard-size", "0")
        p = subprocess.Popen([QNEXT, "quantize", "-m", big, "-o", bg, "--type", "q4_k_m", "--threads", "1", "--progress"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        report(r.returncode == 0 and p.returncode == 130 and "removed" in err and not os.path.exists(bg),
               "Ctrl-C: exit %s, output %s" % (p.returncode, "left" if os.path.exists(bg) else "removed"))
    print("%d testlib.failures" % testlib.failures if testlib.failures else "all passed")
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    QNEXT, GOLDEN = sys.argv[1], sys.argv[2]
    sys.exit(main())
