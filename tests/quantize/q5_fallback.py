#!/usr/bin/env python3
"""llama.cpp's type fallbacks in `qnext quantize` and loading the Q5_0/Q5_1 files they produce (helper "q5").

The golden fixtures have rows of 128 / 96 (hidden) and 48 / 40 / 56 / 64 (expert and shared FFN widths), none a
multiple of the K-quants' 256, so every quantized tensor falls back (llama.cpp tensor_type_fallback):
Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 where 32 does not divide the row either (48, 40, 56).

- the written file (and `qnext synth --type q4_k_m` of tiny's config, which shares the plan), read by the small GGUF parser below (not qnext's reader): every tensor's type is the one
  the rule gives for its row length, named pins (tiny q4_k_m: ffn_down_exps F16, ffn_gate_exps Q5_0, the
  more-bits attn_qkv of layer 2 Q8_0; yarn q5_k_m: Q5_1 and F16 for rows of 40 / 56), and `-v` names every
  fallen-back tensor with its shape and type;
- token_embd's Q5_0 / Q5_1 (and, in a q8_0 file, Q8_0) blocks are byte-identical to ggml's reference quantizer, re-done here in Python
  with float32 rounding at every step (quantize_row_{q5_0,q5_1,q8_0}_ref; struct round trips give exact f32/f16);
- Vulkan logits on the Q5_0 and Q5_1 files (no GPU kernel for those blocks: dequantized on the host at load)
  vs the CPU reference on the same file (same dequantized weights): max |d| <= 1e-4 * max |logit|;
- the same Vulkan logits vs the fixture's HF logits (expected.safetensors prefill0): mean |d| / mean |ref|
  <= TOL_MEAN and max |d| / max |ref| <= TOL_MAX (5-bit weights on a random tiny model; measured values printed
  and quoted at TOL_MEAN).
Usage: q5_fallback.py QNEXT GOLDEN_DIR"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, report  # noqa: E402

TOL_VK_CPU = 1e-4        # Vulkan vs CPU reference, relative to max |logit| (measured ~1e-6)
# vs HF expected (prefill0, 150 tokens): mean |d| / mean |ref| and max |d| / max |ref|. Measured 0.256 / 0.612
# (q4_k_m: Q5_0 + Q8_0 + F16) and 0.248 / 0.866 (q5_k_m: Q5_1 + Q8_0 + F16): the random tiny model amplifies
# the ~4 % rms weight error of 5-bit blocks (Q8_0's 0.4 % gives 0.048 / 0.25, tests/quantize/test_quantize.c).
# Unrelated logits (a wrong layout or transform) give a mean ratio near 1.
TOL_MEAN = {"q4_k_m": 0.35, "q5_k_m": 0.35}
TOL_MAX = {"q4_k_m": 1.1, "q5_k_m": 1.1}

F32, F16, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K = 0, 1, 6, 7, 8, 12, 13, 14
NAMES = {0: "F32", 1: "F16", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 30: "BF16"}
BLOCK = {F32: (1, 4), F16: (1, 2), Q5_0: (32, 22), Q5_1: (32, 24), Q8_0: (32, 34), Q4_K: (256, 144),
         Q5_K: (256, 176), Q6_K: (256, 210)}


def run(*args, env=None):
    return subprocess.run([QNEXT, *args], capture_output=True, text=True, timeout=240, env=env)


# ---------------------------------------------------------------- a minimal GGUF reader (v3, little-endian)

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read_gguf(path):
    """-> (kv dict of scalars/strings, {name: (type, ne list, absolute offset)})"""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(SCALAR[t])

    assert data[:4] == b"GGUF", path
    pos = 4
    version, n_t, n_kv = take("I"), take("Q"), take("Q")
    assert version in (2, 3)
    kv = {}
    for _ in range(n_kv):
        k = string()
        kv[k] = value(take("I"))
    infos = []
    for _ in range(n_t):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        infos.append((name, take("I"), ne, take("Q")))
    align = kv.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    return data, kv, {n: (t, ne, base + off) for n, t, ne, off in infos}


# ---------------------------------------------------------------- ggml's reference Q5 rounding in float32

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


def q5_block(x, with_min):
    """ggml quantize_row_q5_0_ref / q5_1_ref of 32 float32 values -> bytes"""
    if with_min:
        lo, hi = min(x), max(x)
        d = f32(f32(hi - lo) / 31.0)
        idv = f32(1.0 / d) if d else 0.0
        L = [int(f32(f32(f32(v - lo) * idv) + 0.5)) for v in x]
        head = struct.pack("<HH", f16_bits(d), f16_bits(lo))
    else:
        amax, mx = 0.0, 0.0
        for v in x:
            if abs(v) > amax:
                amax, mx = abs(v), v
        d = f32(mx / -16.0)
        idv = f32(1.0 / d) if d else 0.0
        L = [min(31, int(f32(f32(v * idv) + 16.5))) for v in x]
        head = struct.pack("<H", f16_bits(d))
    qh = 0
    for i, q in enumerate(L):
        qh |= ((q >> 4) & 1) << i
    qs = bytes((L[j] & 15) | (L[j + 16] & 15) << 4 for j in range(16))
    return head + struct.pack("<I", qh) + qs


def q8_block(x):
    """ggml quantize_row_q8_0_ref: d = amax / 127, q = roundf(x * (1/d)) (halves away from zero)"""
    d = f32(max(abs(v) for v in x) / 127.0)
    idv = f32(1.0 / d) if d else 0.0
    q = []
    for v in x:
        p = f32(v * idv)
        r = math.floor(abs(p) + 0.5)   # roundf (exact in double): halves away from zero
        q.append(-r if p < 0 else r)
    return struct.pack("<H32b", f16_bits(d), *q)


def bf16_tensor(folder, name):
    with open(os.path.join(folder, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        t = h[name]
        assert t["dtype"] == "BF16"
        a, b = t["data_offsets"]
        f.seek(8 + n + a)
        raw = f.read(b - a)
    return [struct.unpack("<f", b"\0\0" + raw[i:i + 2])[0] for i in range(0, len(raw), 2)]


def expected(folder, name):
    with open(os.path.join(folder, "expected.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        t = h[name]
        a, b = t["data_offsets"]
        f.seek(8 + n + a)
        raw = f.read(b - a)
    fmt = {"F32": "f", "I32": "i", "I64": "q"}[t["dtype"]]
    return list(struct.unpack("<%d%s" % (len(raw) // struct.calcsize(fmt), fmt), raw))


# ---------------------------------------------------------------- checks

def rule(want, ne0):
    """llama.cpp tensor_type_fallback for the types the K-quant mixes produce"""
    if ne0 % BLOCK[want][0] == 0:
        return want
    fb = {Q4_K: Q5_0, Q5_K: Q5_1, Q6_K: Q8_0}.get(want, F16)
    return fb if ne0 % BLOCK[fb][0] == 0 else F16


def check_types(tag, path, stdout, base, pins, all_named=True):
    _, _, ts = read_gguf(path)
    named = {l.split()[0]: l for l in stdout.splitlines() if l.startswith("  ") and " -> " in l}
    said = re.search(r"(\d+) tensors have rows", stdout)
    bad, fallen = [], 0
    for name, (t, ne, _) in ts.items():
        if t == F32:
            continue
        ne0 = ne[0]
        # the mix picks base or Q6_K (or Q8_0 for output.weight when rows do not fit); the fallback follows
        ok = any(rule(w, ne0) == t for w in (base, Q6_K)) or (name == "output.weight" and t == Q8_0)
        fell = ne0 % 256 != 0 and name != "output.weight"
        fallen += fell
        line = named.get(name, "")
        shape = "ne {%s}" % ", ".join(str(x) for x in ne)
        if not ok or (all_named and fell != bool(line)) or (line and (not fell or shape not in line or
                                                                       "-> " + NAMES[t] not in line)):
            bad.append("%s %s %s: '%s'" % (name, shape, NAMES.get(t, t), line.strip()))
    ok = not bad and len(named) > 0 and said is not None and int(said.group(1)) == fallen
    report(ok, "%s: %d tensors, %d fell back (said: %s), %d named with shape and type, types follow the rule%s" %
           (tag, len(ts), fallen, said.group(1) if said else "nothing", len(named),
            ("; wrong: " + "; ".join(bad[:4])) if bad else ""))
    wrong = ["%s is %s, want %s" % (n, NAMES.get(ts[n][0]) if n in ts else "absent", NAMES[t])
             for n, t in pins.items() if n not in ts or ts[n][0] != t]
    report(not wrong, "%s pinned types: %s" % (tag, "; ".join(wrong) if wrong else
                                              ", ".join("%s %s" % (n, NAMES[t]) for n, t in pins.items())))
    return ts


def check_bytes(tag, path, folder, qtype):
    data, _, ts = read_gguf(path)
    t, ne, off = ts["token_embd.weight"]
    x = bf16_tensor(folder, "model.embed_tokens.weight")
    bs = BLOCK[t][1]
    nb = len(x) // 32
    enc = (lambda v: q8_block(v)) if qtype == Q8_0 else (lambda v: q5_block(v, qtype == Q5_1))
    diff = [i for i in range(nb) if enc(x[32 * i:32 * i + 32]) != data[off + i * bs:off + (i + 1) * bs]]
    report(t == qtype and not diff, "%s token_embd.weight %s: %d blocks, %d differ from ggml's reference rounding%s" %
           (tag, NAMES.get(t), nb, len(diff), " (first %d)" % diff[0] if diff else ""))


def logits(model, backend, ids, out):
    r = run("logits", "-m", model, "--backend", backend, "--tokens", ",".join(map(str, ids)), "-o", out)
    if r.returncode:
        print(r.stderr.strip()[-600:])
        return None
    return read_npy(out)[1]


def check_forward(tag, path, folder, ftype, tmp):
    ids = expected(folder, "prefill0.input_ids")
    want = expected(folder, "prefill0.logits")
    c = logits(path, "cpu", ids, os.path.join(tmp, "c.npy"))
    v = logits(path, "vulkan", ids, os.path.join(tmp, "v.npy"))
    if c is None or v is None:
        report(False, "%s: logits failed" % tag)
        return
    mx = max(abs(a) for a in c)
    d = max(abs(a - b) for a, b in zip(c, v))
    report(len(c) == len(v) == len(want) and d <= TOL_VK_CPU * mx,
           "%s: Vulkan vs CPU reference on the same file, %d tokens: max |d| %.3g, max |logit| %.3g (tolerance %.0e relative)"
           % (tag, len(ids), d, mx, TOL_VK_CPU))
    dm = max(abs(a - b) for a, b in zip(v, want))
    mw = max(abs(b) for b in want)
    mean = sum(abs(a - b) for a, b in zip(v, want)) / sum(abs(b) for b in want)
    report(dm <= TOL_MAX[ftype] * mw and mean <= TOL_MEAN[ftype],
           "%s: Vulkan vs HF expected logits: max |d| / max |ref| %.3g (tolerance %.2f), mean |d| / mean |ref| %.3g "
           "(tolerance %.2f)" % (tag, dm / mw, TOL_MAX[ftype], mean, TOL_MEAN[ftype]))


def main():
    tiny, yarn = os.path.join(GOLDEN, "tiny"), os.path.join(GOLDEN, "yarn")
    with tempfile.TemporaryDirectory() as tmp:
        for folder, ftype, base, pins in (
            (tiny, "q4_k_m", Q4_K, {"blk.0.ffn_down_exps.weight": F16, "blk.0.ffn_gate_exps.weight": Q5_0,
                                    "blk.2.attn_qkv.weight": Q8_0, "blk.3.attn_v.weight": Q8_0,
                                    "token_embd.weight": Q5_0, "output.weight": Q8_0}),
            (tiny, "q5_k_m", Q5_K, {"blk.0.ffn_up_exps.weight": Q5_1, "blk.1.ffn_down_exps.weight": F16,
                                    "token_embd.weight": Q5_1}),
            (yarn, "q5_k_m", Q5_K, {"blk.0.ffn_down_exps.weight": F16, "blk.0.ffn_down_shexp.weight": F16,
                                    "blk.0.ffn_gate_exps.weight": Q5_1, "blk.0.ssm_out.weight": Q5_1}),
        ):
            tag = "%s %s" % (os.path.basename(folder), ftype)
            g = os.path.join(tmp, "%s-%s.gguf" % (os.path.basename(folder), ftype))
            r = run("quantize", "-m", folder, "-o", g, "--type", ftype, "--no-progress", "-v")
            report(r.returncode == 0, "%s: quantize %s" % (tag, r.stderr.strip()[-300:]))
            if r.returncode:
                continue
            check_types(tag, g, r.stdout, base, pins)
            check_bytes(tag, g, folder, Q5_0 if base == Q4_K else Q5_1)
            if folder == tiny:
                check_forward(tag, g, folder, ftype, tmp)
        # the converter's q8_0 (and the Q6_K -> Q8_0 fallback) use ggml's Q8_0 reference rounding too
        q8 = os.path.join(tmp, "tiny-q8_0.gguf")
        r = run("quantize", "-m", tiny, "-o", q8, "--type", "q8_0", "--no-progress")
        if r.returncode == 0:
            check_bytes("tiny q8_0", q8, tiny, Q8_0)
        # qnext synth --format gguf shares the plan: same types, the first 10 fallbacks named
        s = os.path.join(tmp, "synth-tiny-q4_k_m.gguf")
        r = run("synth", "-o", s, "--type", "q4_k_m", "--config", tiny, "--no-progress", "--no-sync")
        report(r.returncode == 0, "synth tiny q4_k_m: %s" % r.stderr.strip()[-300:])
        if r.returncode == 0:
            check_types("synth tiny q4_k_m", s, r.stdout, Q4_K, {"blk.0.ffn_down_exps.weight": F16,
                                                                  "blk.0.ffn_gate_exps.weight": Q5_0}, False)
    print("%d testlib.failures" % testlib.failures if testlib.failures else "all passed")
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    QNEXT, GOLDEN = sys.argv[1], sys.argv[2]
    sys.exit(main())
