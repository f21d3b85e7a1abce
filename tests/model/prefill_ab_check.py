#!/usr/bin/env python3
"""prefill_ab_check.py QNEXT FIXTURE_DIR WORKDIR — the prefill A/B paths give the default path's logits.

A `qnext synth` Q4_K_M GGUF of the golden tiny config with hidden 256 (K-quants fit; Q4_K / Q6_K experts and dense
parts, f32 router) and 8 experts, a 40-token prompt (the prefill graph: above small_t), logits of every position:
  each env variant vs the default Vulkan path          rel L2 < 1e-5 (other but fixed f32 summation orders)
    QNEXT_MOE_TOKEN_T=0 QNEXT_MOE_MT_I8=0  routed experts on the grouped kernels in f32 (the default runs 40 tokens
                              on the per-token decode kernels, tokens in z: QNEXT_MOE_TOKEN_T defaults to 160)
    QNEXT_MOEQ_DN=rows        the per-token kernels' down as row sets (moe_q_dn_*) instead of the default split over
                              the experts (moe_q_dnx_*, last-workgroup combine)
    QNEXT_CHUNK=16            the prompt in three calls
    QNEXT_MOE_TOKEN_T=0 QNEXT_MOE_MT_PAIRS=1000 QNEXT_MOE_MT_I8=0 (+ QNEXT_MOE_MT_LAYOUT=...)  routed experts on the
                              multi-token grouped matvec (moe_qmt.comp) in f32, in its default layout and in one of
                              1 / 2 lanes per row
    QNEXT_MATMUL_PF=1         matmul.comp's register prefetch (the router's f32 parts): same sums, so rel L2 0
    QNEXT_MM_F32_TILE=0       the f32 parts of mixed-type fusions in the dense matmul's tile: same sums, so rel L2 0
    QNEXT_MM_F32_LARGE_MIN=1  ... in the large tile (QNEXT_MM_F32_TILE_LARGE, default 128,64,64,16,8,4,1; the model
                              takes it for calls of >= 512 such tiles): same sums, so rel L2 0
  each rounding variant vs the default path                 rel L2 < its tolerance
    QNEXT_MOE_MT_PAIRS=1000 QNEXT_MOE_TOKEN_T=0  moe_qmt's int8 twins (the default where moe_qmt is taken): x / act
                              quantized to int8 per 32 (2e-2)
  the default Vulkan path vs the CPU reference on the same GGUF  rel L2 < 1e-4
  `qnext prefill-ab` with two variants: a result line per (variant, prompt), the same next token for both.
(The tensor-core variants QNEXT_CM_MOE_TILE_SMALL / QNEXT_ROUTER_CM need VK_NV_cooperative_matrix: lavapipe has none.)
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, rel_l2, report  # noqa: E402

VARIANTS = [
    {"QNEXT_MOE_TOKEN_T": "0", "QNEXT_MOE_MT_I8": "0"},
    {"QNEXT_MOEQ_DN": "rows"},
    {"QNEXT_CHUNK": "16"},
    {"QNEXT_MOE_TOKEN_T": "0", "QNEXT_MOE_MT_PAIRS": "1000", "QNEXT_MOE_MT_I8": "0"},
    {"QNEXT_MOE_TOKEN_T": "0", "QNEXT_MOE_MT_PAIRS": "1000", "QNEXT_MOE_MT_I8": "0",
     "QNEXT_MOE_MT_LAYOUT": "64,8,1,1,256:32,4,3,2,512"},
    {"QNEXT_MATMUL_PF": "1"},
    {"QNEXT_MM_F32_TILE": "0"},
    {"QNEXT_MM_F32_LARGE_MIN": "1"},
]
# variants that round differently: (env, rel L2 tolerance vs the default)
VARIANTS_Q = [
    ({"QNEXT_MOE_TOKEN_T": "0", "QNEXT_MOE_MT_PAIRS": "1000"}, 2e-2),
]


def run(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=dict(os.environ, **(env or {})))
    if p.returncode:
        print("command failed (%d): %s\n%s" % (p.returncode, " ".join(args), p.stderr.strip()[-800:]))
    return p.returncode, p.stdout


def logits(qnext, model, backend, toks, out, env=None):
    rc, _ = run([qnext, "logits", "-m", model, "--tokens", toks, "--backend", backend, "-o", out], env)
    return read_npy(out)[1] if rc == 0 else None


def main():
    qnext, fixture, work = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(work, exist_ok=True)
    g = os.path.join(work, "pfab_q4_k_m.gguf")
    if run([qnext, "synth", "-o", g, "--type", "q4_k_m", "--config", fixture, "--hidden", "256", "--moe-inter", "256",
            "--shared-inter", "256", "--experts", "8", "--force", "--no-progress", "--no-sync"])[0]:
        report(False, "synth q4_k_m written")
        return 1
    toks = ",".join(str((37 * i + 11) % 500) for i in range(40))
    base = logits(qnext, g, "vulkan", toks, os.path.join(work, "base.npy"))
    cpu = logits(qnext, g, "cpu", toks, os.path.join(work, "cpu.npy"))
    if base is None or cpu is None:
        report(False, "default and CPU logits computed")
        return 1
    e = rel_l2(base, cpu)
    report(e < 1e-4, "default Vulkan prefill vs CPU reference: rel L2 %.3e (tolerance 1e-4)" % e)
    for v in VARIANTS:
        name = " ".join("%s=%s" % kv for kv in v.items())
        a = logits(qnext, g, "vulkan", toks, os.path.join(work, "variant.npy"), v)
        if a is None:
            report(False, "%s: logits computed" % name)
            continue
        e = rel_l2(a, base)
        report(e < 1e-5 and all(x == x for x in a), "%s vs the default: rel L2 %.3e (tolerance 1e-5)" % (name, e))
    for v, tol in VARIANTS_Q:
        name = " ".join("%s=%s" % kv for kv in v.items())
        a = logits(qnext, g, "vulkan", toks, os.path.join(work, "variant.npy"), v)
        e = rel_l2(a, base) if a is not None else float("nan")
        report(a is not None and e < tol and all(x == x for x in a),
               "%s vs the default: rel L2 %.3e (tolerance %g)" % (name, e, tol))
    rc, out = run([qnext, "prefill-ab", "-m", g, "--prompts", "7,40", "--reps", "1", "--variant", "-",
                   "--variant", "QNEXT_MOE_TOKEN_T=0"])
    lines = [x for x in out.splitlines() if x.startswith("prefill-ab [") and " prompt " in x]
    nexts = {}
    for x in lines:
        nexts.setdefault(x.split(" prompt ")[1].split(":")[0].strip(), set()).add(x.split("next ")[-1].rstrip(")"))
    report(rc == 0 and len(lines) == 4 and all(len(s) == 1 for s in nexts.values()),
           "prefill-ab: 2 variants x 2 prompts, the same next token per prompt: %s" % "; ".join(lines))
    many = ",".join(str(i) for i in range(1, 18))    # 17 sizes: one more than the tool holds
    p = subprocess.run([qnext, "prefill-ab", "-m", g, "--prompts", many, "--variant", "-"], capture_output=True,
                       text=True, timeout=60)
    report(p.returncode != 0 and "at most 16 sizes" in p.stderr and "prefill-ab [" not in p.stdout,
           "prefill-ab: 17 prompt sizes refused, not cut to 16 (rc %d: %s)" % (p.returncode, p.stderr.strip()))
    print("%d failure(s)" % testlib.failures)
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
