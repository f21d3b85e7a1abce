#!/usr/bin/env python3
"""coopmat_check.py QNEXT MODEL [NTOK] — model-level effect of the tensor-core prefill (f16 operands) on a GPU.

Runs `qnext logits` over the same NTOK (default 200) token ids three times, with QNEXT_COOPMAT=0 (f32-FMA
matmuls), =blocks (GGUF block weights and experts on tensor cores) and =1 (every weight), and prints for each
tensor-core run vs the f32 one: the relative L2 error of all logits, the worst row's, and how many positions keep
the same top-1 token. Exits 0 when every rel L2 is below 2e-2 (f16 operands give ~1e-3 per matmul; the
quantization error of a Q4_K_M model is ~1e-1 vs its f16 original), 1 otherwise, 77 when the device has no
cooperative matrices (the runs would all be the f32 path). Not part of `meson test` (lavapipe has no tensor cores):
the lead runs it on the H100, e.g. `python3 tests/model/coopmat_check.py build-perf/tools/qnext /tmp/q.gguf`.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from testlib import read_npy, rel_l2  # noqa: E402


def logits(qnext, model, toks, out, mode):
    env = dict(os.environ, QNEXT_COOPMAT=mode)
    p = subprocess.run([qnext, "logits", "-m", model, "--tokens", toks, "--backend", "vulkan", "-o", out],
                       capture_output=True, text=True, timeout=1800, env=env)
    if p.returncode:
        print("qnext logits (QNEXT_COOPMAT=%s) failed (%d):\n%s" % (mode, p.returncode, p.stderr.strip()[-2000:]))
        sys.exit(1)
    if "lacks VK_NV_cooperative_matrix" in p.stderr or "tensor-core matmuls unavailable" in p.stderr:
        print("SKIP: %s" % p.stderr.strip().splitlines()[-1])
        sys.exit(77)
    return read_npy(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    qnext, model = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    toks = ",".join(str((i * 7919 + 13) % 500) for i in range(n))  # ids < 500: valid for every model here
    ok = True
    with tempfile.TemporaryDirectory() as d:
        (T, V), ref = logits(qnext, model, toks, os.path.join(d, "fma.npy"), "0")
        for mode in ("blocks", "1"):
            _, got = logits(qnext, model, toks, os.path.join(d, mode + ".npy"), mode)
            err = rel_l2(got, ref)
            rows = [rel_l2(got[t * V:(t + 1) * V], ref[t * V:(t + 1) * V]) for t in range(T)]
            top = sum(max(range(V), key=lambda i: got[t * V + i]) == max(range(V), key=lambda i: ref[t * V + i])
                      for t in range(T))
            good = err < 2e-2
            ok = ok and good
            print("%-4s QNEXT_COOPMAT=%-6s vs f32-FMA over %d tokens: rel L2 %.3e (worst row %.3e), same top-1 at "
                  "%d of %d positions" % ("ok" if good else "FAIL", mode, T, err, max(rows), top, T))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
