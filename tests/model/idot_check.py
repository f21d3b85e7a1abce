#!/usr/bin/env python3
"""idot_check.py QNEXT CONVERTER FIXTURE_DIR WORKDIR — the int8-dot decode matvecs (QNEXT_IDOT=1, qmatvec_i8.comp)
in the whole forward pass on the Vulkan backend.

With QNEXT_IDOT=1 the decode block matvecs (in_proj / out_proj / attention parts / lm_head) quantize their input x
to int8 per 32 elements (QNEXT_IDOT=2: the routed experts' gate_up too), so the logits are NOT those of the plain
kernels: each x element moves by up to 1/254 of its block's max. Tiny Q8_0 runs both modes, the synth models 2. Checks (relative L2 over all logits, one call of 1 token and one of 3 tokens in z):
  the kernels ran: `-vv` names them ("int8-dot decode block matvecs")
  IDOT=1|2 vs IDOT=0 on the same GGUF < 5e-2 (measured on lavapipe: 0.6e-2 .. 2e-2; an error in a block format's
      scales or offsets gives 0.3 or more): golden tiny as Q8_0 (converter) and `qnext synth` hidden-256 models as
      q4_k_m (Q4_K / Q6_K / Q8_0 dense), q5_k_s (Q5_K) and q4_0, and q4_k_m with the real 80B layer shapes
      (hidden 2048, out projections of 4096 columns; 2 layers)
  tiny Q8_0 vs HF's expected logits: < 8e-2, gguf_check.py's bound for the Q8_0 weights alone
  the decode MoE chain (QNEXT_MOE_CHAIN=1; the int8-dot gate_up) == QNEXT_MOE_CHAIN=0 bit for bit on the q4_k_m
      models (1 token: the decode path)
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, read_safetensors, rel_l2, report  # noqa: E402

TOL = 5e-2


def run(args, env=None):
    p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
    if p.returncode:
        print("command failed (%d): %s\n%s" % (p.returncode, " ".join(args), p.stderr.strip()[-800:]))
    return p.returncode, p.stderr


def logits(qnext, model, toks, out, idot):
    env = dict(os.environ, QNEXT_IDOT=idot)
    rc, err = run([qnext, "logits", "-m", model, "--tokens", toks, "--backend", "vulkan", "-vv", "-o", out], env)
    return (read_npy(out)[1] if rc == 0 else None), "int8-dot decode block matvecs" in err


def check(qnext, gguf, work, name, modes, exp=None):
    for toks, key, mode in [(t, k, m) for t, k in ((("1", None), ("1,2,3", None)) if exp is None else
                                                   ((None, "prefill1"),)) for m in modes]:
        if key:  # the fixture's own 7-token prompt, 1 token at a time would be the decode path: take its first token
            toks = str(exp[key + ".input_ids"][1][0])
        a, used = logits(qnext, gguf, toks, os.path.join(work, name + "_i8.npy"), mode)
        b, _ = logits(qnext, gguf, toks, os.path.join(work, name + "_f.npy"), "0")
        if a is None or b is None:
            report(False, "%s tokens %s: logits computed" % (name, toks))
            continue
        report(used, "%s tokens %s: the int8-dot matvecs ran (QNEXT_IDOT=%s)" % (name, toks, mode))
        finite = all(x == x and abs(x) < 1e30 for x in a)
        e = rel_l2(a, b)
        report(finite and e < TOL, "%s tokens %s: QNEXT_IDOT=%s vs 0: rel L2 %.3e (tolerance %.0e)" % (name, toks, mode, e,
                                                                                                     TOL))
        if key:
            n = len(b)
            ref = exp[key + ".logits"][1][:n]  # the first position's logits
            e0, e1 = rel_l2(b, ref), rel_l2(a, ref)
            report(e1 < 8e-2, "%s: vs HF expected (first token): rel L2 %.3e with QNEXT_IDOT=%s, %.3e without "
                   "(tolerance 8e-2)" % (name, e1, mode, e0))


def chain_check(qnext, gguf, work, name):
    """The decode MoE chain (QNEXT_MOE_CHAIN=1: route -> gate_up -> split down without barriers; here with the int8-dot
    gate_up) gives the barrier path's logits bit for bit, 1 token (decode)."""
    out = {}
    for mode in ("1", "0"):
        env = dict(os.environ, QNEXT_IDOT="2", QNEXT_MOE_CHAIN=mode)
        f = os.path.join(work, "%s_chain%s.npy" % (name, mode))
        rc, err = run([qnext, "logits", "-m", gguf, "--tokens", "5", "--backend", "vulkan", "-vv", "-o", f], env)
        out[mode] = (read_npy(f)[1] if rc == 0 else None, "decode MoE chain on" in err)
    a, on = out["1"]
    b, off = out["0"]
    report(a is not None and b is not None and on and not off,
           "%s: QNEXT_MOE_CHAIN=1 / 0 logits computed, the chain on / off as asked" % name)
    if a is not None and b is not None:
        diff = sum(1 for x, y in zip(a, b) if x != y)
        report(len(a) == len(b) and diff == 0, "%s: chain vs barriers: %d of %d logits differ (bit for bit)" %
               (name, diff, len(a)))


def main():
    qnext, conv, fixture, work = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    exp = read_safetensors(os.path.join(fixture, "expected.safetensors"))
    g = os.path.join(work, "tiny_q8_0.gguf")
    if run([conv, fixture, "--write-gguf", g, "q8_0"])[0]:
        report(False, "tiny q8_0: GGUF written")
    else:
        check(qnext, g, work, "tiny-q8_0", ("1", "2"), exp)
    syn = [(t, ["--config", fixture, "--hidden", "256", "--moe-inter", "256", "--shared-inter", "256", "--experts", "8"])
           for t in ("q4_k_m", "q5_k_s", "q4_0")]
    syn.append(("q4_k_m", ["--layers", "2", "--experts", "16", "--vocab", "4096"]))  # the real 80B layer shapes
    for i, (typ, args) in enumerate(syn):
        g = os.path.join(work, "syn%d_%s.gguf" % (i, typ))
        if run([qnext, "synth", "-o", g, "--type", typ, "--force", "--no-progress", "--no-sync"] + args)[0]:
            report(False, "synth %s: GGUF written" % typ)
            continue
        check(qnext, g, work, "synth-%s%s" % (typ, "-real" if "--vocab" in args else ""), ("2",))
        if typ == "q4_k_m":
            chain_check(qnext, g, work, "synth-%s%s" % (typ, "-real" if "--vocab" in args else ""))
    print("%d failure(s)" % testlib.failures)
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
