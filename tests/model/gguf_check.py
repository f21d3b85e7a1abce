#!/usr/bin/env python3
"""gguf_check.py QNEXT CONVERTER FIXTURE_DIR WORKDIR — `qnext -m FILE.gguf --backend vulkan` end to end.

CONVERTER is tests/unit/test_gguf_qwen3next.c built as a tool (--write-gguf, --gguf-to-hf). For each GGUF:
  golden tiny as F32 and as Q8_0 (the test-only HF->GGUF converter), and `qnext synth` models with hidden 256
  (K-quants fit) as q4_k_m (Q4_K gate/up experts, Q4_K or Q6_K down per layer, Q6_K / Q8_0 / F32 elsewhere),
  q8_0, q5_k_s and q4_0: their routed experts and most dense matrices stay in their blocks on the device, and a
  q4_k_m model with the real 80B layer shapes (4 layers, 16 experts, vocabulary 4096),
the CPU reference runs on the SAME weights: --gguf-to-hf reads every tensor back through loader/gguf_qwen3next
(dequantized, inverse transforms applied) and writes an F32 HF folder. Checks (relative L2 over all logits):
  vulkan(GGUF) vs cpu(dequantized HF)  prefill1 (7 tokens) and prefill0 (150 tokens, the prefill path; not for
                                       the q8_0 / q5_k_s synth models, to keep the test short) < 1e-4
  vulkan(GGUF) vs HF's expected.safetensors: F32 < 1e-3, Q8_0 < 8e-2 (quantization error of the weights)
  greedy decode (generate --ids, one token at a time) on the GGUF == the CPU reference's ids on the same weights
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, read_safetensors, rel_l2, report  # noqa: E402


# env QNEXT_TEST_GGUF_TOL: the vulkan-vs-cpu tolerance (default 1e-4; a variant that rounds weights to f16 sets it)
TOL = float(os.environ.get("QNEXT_TEST_GGUF_TOL", "1e-4"))


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if p.returncode:
        print("command failed (%d): %s\n%s" % (p.returncode, " ".join(args), p.stderr.strip()[-800:]))
    return p.returncode, p.stdout


def logits(qnext, model, backend, toks, out):
    rc, _ = run([qnext, "logits", "-m", model, "--tokens", toks, "--backend", backend, "-o", out])
    return read_npy(out)[1] if rc == 0 else None


def greedy(qnext, model, backend, toks, n):
    rc, so = run([qnext, "generate", "-m", model, "--tokens", toks, "-n", str(n), "--greedy", "--backend", backend,
                  "--ids"])
    return so.strip() if rc == 0 else None


def check_model(qnext, gguf, deq, work, name, exp, hf_tol, long_prefill=True):
    ids = {k: ",".join(str(x) for x in exp[k + ".input_ids"][1]) for k in ("prefill1", "prefill0")}
    ids["prefill3"] = ",".join(ids["prefill1"].split(",")[:3])  # 2..small_t tokens: the matvec-sized prefill
    for k in ("prefill1", "prefill3", "prefill0") if long_prefill else ("prefill1", "prefill3"):
        a = logits(qnext, gguf, "vulkan", ids[k], os.path.join(work, name + "_vk.npy"))
        b = logits(qnext, deq, "cpu", ids[k], os.path.join(work, name + "_cpu.npy"))
        if a is None or b is None:
            report(False, "%s %s: logits computed" % (name, k))
            continue
        finite = all(x == x and abs(x) < 1e30 for x in a)
        err = rel_l2(a, b)
        report(finite and err < TOL, "%s %s: vulkan on the GGUF vs cpu on its dequantized weights: rel L2 %.3e "
               "(tolerance %.0e)" % (name, k, err, TOL))
        if hf_tol and k != "prefill3":
            e = rel_l2(a, exp[k + ".logits"][1])
            report(e < hf_tol, "%s %s: vs HF expected: rel L2 %.3e (tolerance %.0e)" % (name, k, e, hf_tol))
    g_vk = greedy(qnext, gguf, "vulkan", ids["prefill1"], 12)
    g_cpu = greedy(qnext, deq, "cpu", ids["prefill1"], 12)
    report(g_vk is not None and g_vk == g_cpu, "%s: greedy decode of 12 tokens: vulkan %s, cpu %s" % (name, g_vk, g_cpu))


def check_dense_bytes(qnext, gguf, work):
    """The 80B Q4_K_M's mixed-type fusions (GDN / attention in-projections, W_moe) are held only as their parts in
    their own types and the embedding table in its blocks (Q4_K): the loader's f32 share is the shared experts'
    down (prefill) and vectors, not f32 copies of the fusions or the table (2.7 GiB on the full model). And bench's
    weight bytes per decoded token are the file's (info's figure) within 1%: the decode binds the parts."""
    p = subprocess.run([qnext, "logits", "-m", gguf, "--tokens", "1", "--backend", "vulkan", "-v", "-o",
                        os.path.join(work, "one.npy")], capture_output=True, text=True, timeout=300)
    line = [x for x in p.stderr.splitlines() if "dense f32" in x]
    f32 = float(line[0].split("dense f32 ")[1].split(" MiB")[0]) if line else -1
    p = subprocess.run([qnext, "info", "-m", gguf, "--json"], capture_output=True, text=True, timeout=60)
    info = json.loads(p.stdout) if p.returncode == 0 else {}
    cfg = info.get("config", {})
    H, V, L, Is = (cfg.get(k, 0) for k in ("hidden_size", "vocab_size", "num_layers", "shared_expert_intermediate_size"))
    want = L * H * Is * 4 / 1048576.0  # f32 shared downs; vectors add < 1 MiB here (the f32 table: V H 4 bytes)
    report(bool(line) and V > 0 and 0 < want <= f32 < want + 1.0, "real-shape q4_k_m: dense f32 %.1f MiB = shared "
           "downs (%.1f MiB) + vectors: no f32 copies of the mixed-type fusions or the embedding table" % (f32, want))
    p = subprocess.run([qnext, "bench", "-m", gguf, "--prompt", "2", "--decode", "2", "--reps", "1", "--json"],
                       capture_output=True, text=True, timeout=300)
    b = json.loads(p.stdout).get("weight_bytes_per_token", 0) if p.returncode == 0 else 0
    t = info.get("bytes_per_token", 0)
    report(t > 0 and abs(b - t) < 0.01 * t, "real-shape q4_k_m: bench's weight bytes per token %d vs the file's %d "
           "(info; within 1%%)" % (b, t))


def main():
    qnext, conv, fixture, work = sys.argv[1:5]
    # env QNEXT_TEST_GGUF_ONLY=name,name: only those models (e.g. synth-q4_k_m,real-shape-q4_k_m: an env variant's run)
    only = [x for x in os.environ.get("QNEXT_TEST_GGUF_ONLY", "").split(",") if x]
    want = lambda name: not only or name in only  # noqa: E731
    os.makedirs(work, exist_ok=True)
    exp = read_safetensors(os.path.join(fixture, "expected.safetensors"))
    for typ, tol in (("f32", 1e-3), ("q8_0", 8e-2)):
        if not want("tiny-" + typ):
            continue
        g, d = os.path.join(work, "tiny_%s.gguf" % typ), os.path.join(work, "tiny_%s_deq" % typ)
        if run([conv, fixture, "--write-gguf", g, typ])[0] or run([conv, fixture, "--gguf-to-hf", g, d])[0]:
            report(False, "tiny %s: GGUF written and read back" % typ)
            continue
        check_model(qnext, g, d, work, "tiny-" + typ, exp, tol)
    for typ in ("q4_k_m", "q8_0", "q5_k_s", "q4_0"):
        if not want("synth-" + typ):
            continue
        g, d = os.path.join(work, "syn_%s.gguf" % typ), os.path.join(work, "syn_%s_deq" % typ)
        if run([qnext, "synth", "-o", g, "--type", typ, "--config", fixture, "--hidden", "256", "--moe-inter", "256",
                "--shared-inter", "256", "--experts", "8", "--force", "--no-progress", "--no-sync"])[0] or \
                run([conv, fixture, "--gguf-to-hf", g, d])[0]:
            report(False, "synth %s: GGUF written and read back" % typ)
            continue
        p = subprocess.run([qnext, "logits", "-m", g, "--tokens", "1", "--backend", "vulkan", "-v", "-o",
                            os.path.join(work, "one.npy")], capture_output=True, text=True, timeout=300)
        line = [x for x in p.stderr.splitlines() if "routed experts" in x]
        report(bool(line) and "experts in GGUF blocks" in line[0], "synth %s: dense matrices and routed experts stay "
               "in their blocks: %s" % (typ, line[0].split(": ", 2)[-1] if line else p.stderr.strip()[-300:]))
        check_model(qnext, g, d, work, "synth-" + typ, exp, None, typ == "q4_k_m")  # 150 tokens: slow on lavapipe
    # the real 80B's layer shapes (hidden 2048, 16 q / 2 kv heads x 256, DeltaNet 16 k / 32 v heads x 128, expert
    # FF 512, top 10) with 4 layers, 16 experts and a 4096 vocabulary: real block alignments and offsets
    g, d = os.path.join(work, "real_q4_k_m.gguf"), os.path.join(work, "real_q4_k_m_deq")
    if not want("real-shape-q4_k_m"):
        pass
    elif run([qnext, "synth", "-o", g, "--type", "q4_k_m", "--layers", "4", "--experts", "16", "--vocab", "4096",
              "--force", "--no-progress", "--no-sync"])[0] or run([conv, fixture, "--gguf-to-hf", g, d])[0]:
        report(False, "real-shape q4_k_m: GGUF written and read back")
    else:
        check_model(qnext, g, d, work, "real-shape-q4_k_m", exp, None, False)
        check_dense_bytes(qnext, g, work)
    print("%d failure(s)" % testlib.failures)
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
