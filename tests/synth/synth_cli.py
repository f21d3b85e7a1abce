#!/usr/bin/env python3
"""synth_cli.py QNEXT GOLDEN_DIR [TOKENIZER_JSON] — `qnext synth` and `qnext info` end to end.

- synth the tiny golden config as safetensors -> `qnext logits --backend cpu` gives finite logits;
  a sharded write (--shard-size 100K) has a valid index.json and gives bit-identical logits (values do not
  depend on sharding); --tokenizer copies tokenizer.json into the folder;
- gguf q8_0 and q4_k_m through the CLI -> `qnext info --json` says qnext's mapping accepts them, with the
  expected type names;
- `qnext info --json` on every golden fixture equals a hand computation from the safetensors header (dense and
  expert bytes, bytes per expert and per decoded token, KV and state sizes);
- errors: existing output without --force (then --force works), bad --type, q4_k_m as safetensors, bad
  --config (missing file, invalid JSON), not enough disk (the full 80B bf16 model, ~160 GB, where the disk has
  less), an unwritable path, --dry-run writes nothing, Ctrl-C removes the partial output (exit 130).
"""
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import testlib  # noqa: E402
from testlib import read_npy, report  # noqa: E402


def run(args, **kw):
    return subprocess.run([QNEXT] + args, capture_output=True, text=True, timeout=600, **kw)


def st_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def logits(model, out):
    r = run(["logits", "-m", model, "--backend", "cpu", "--tokens", "1,5,9,200,7,3", "-o", out])
    report(r.returncode == 0, "logits on %s (%s)" % (model, r.stderr.strip()[-200:]))
    return read_npy(out)[1] if r.returncode == 0 else None


def test_safetensors(tmp, tiny, tok):
    a, s = os.path.join(tmp, "a"), os.path.join(tmp, "sharded")
    r = run(["synth", "-o", a, "--config", os.path.join(tiny, "config.json")])
    report(r.returncode == 0 and "250 tensors in 1 file" in r.stdout, "synth tiny safetensors: " + r.stdout.strip())
    la = logits(a, os.path.join(tmp, "a.npy"))
    report(la is not None and all(math.isfinite(x) for x in la) and max(abs(x) for x in la) > 0.1,
           "tiny synth logits are finite and not all ~0")
    args = ["synth", "-o", s, "--config", tiny, "--shard-size", "100K"] + (["--tokenizer", tok] if tok else [])
    r = run(args)
    report(r.returncode == 0, "synth sharded (%s)" % r.stderr.strip())
    idx = json.load(open(os.path.join(s, "model.safetensors.index.json")))
    files = sorted(set(idx["weight_map"].values()))
    n = len(files)
    total = sum(sum(e["data_offsets"][1] - e["data_offsets"][0] for k, e in st_header(os.path.join(s, f)).items()
                    if k != "__metadata__") for f in files)
    report(n > 10 and files[0] == "model-00001-of-%05d.safetensors" % n and len(idx["weight_map"]) == 250 and
           idx["metadata"]["total_size"] == total, "index.json: %d shards, %d tensors, total_size %d" %
           (n, len(idx["weight_map"]), total))
    ls = logits(s, os.path.join(tmp, "s.npy"))
    report(ls is not None and la is not None and ls == la, "sharded logits equal the single-file logits bit for bit")
    if tok:
        report(os.path.exists(os.path.join(s, "tokenizer.json")), "--tokenizer copies tokenizer.json into the folder")
    # existing output
    r = run(["synth", "-o", a, "--config", tiny])
    report(r.returncode == 1 and "use --force" in r.stderr, "existing folder refused: " + r.stderr.strip())
    r = run(["synth", "-o", a, "--config", tiny, "--seed", "5", "--force"])
    lb = logits(a, os.path.join(tmp, "b.npy")) if r.returncode == 0 else None
    report(r.returncode == 0 and lb is not None and lb != la, "--force replaces it (another seed, other logits)")


def info_json(path):
    r = run(["info", "-m", path, "--json"])
    if r.returncode != 0:
        report(False, "info %s: %s" % (path, r.stderr.strip()))
        return None
    return json.loads(r.stdout)


def test_gguf(tmp, tiny):
    for t, types in (("q8_0", {"Q8_0", "F32", "F16"}), ("q4_k_m", {"Q4_K", "Q6_K", "F32"})):
        out = os.path.join(tmp, "m-%s.gguf" % t)
        cfg = ["--config", tiny] if t == "q8_0" else ["--layers", "8", "--hidden", "256", "--vocab", "1024",
               "--heads", "4", "--head-dim", "64", "--experts", "16", "--top-k", "4", "--moe-inter", "256",
               "--shared-inter", "256"]
        r = run(["synth", "-o", out, "--type", t] + cfg)   # q4_k_m: hidden 256 with the 80B's DeltaNet heads
        report(r.returncode == 0, "synth gguf %s (%s)" % (t, r.stderr.strip()))
        j = info_json(out)
        if not j:
            continue
        report(j["check_ok"] and j["format"] == "gguf v3" and j["file_type"] == t and set(j["types"]) == types,
               "info %s: check '%s', types %s" % (t, j["check"], sorted(j["types"])))
        report(j["dense_bytes"] + j["expert_bytes"] == sum(v["bytes"] for v in j["types"].values()),
               "info %s: dense + expert bytes = all tensor bytes" % t)
        r = run(["synth", "-o", out, "--type", t] + cfg)
        report(r.returncode == 1 and "use --force" in r.stderr, "existing gguf refused: " + r.stderr.strip())


def expected_info(d):
    """The numbers `qnext info` must print, computed here from config.json and the safetensors header."""
    cfg = json.load(open(os.path.join(d, "config.json")))
    hdr = st_header(os.path.join(d, "model.safetensors"))
    L, E, K, V = cfg["num_hidden_layers"], cfg["num_experts"], cfg["num_experts_per_tok"], cfg["vocab_size"]
    interval = cfg.get("full_attention_interval", 4)
    full = [i for i in range(L) if (i + 1) % interval == 0]
    if "layer_types" in cfg:
        full = [i for i, t in enumerate(cfg["layer_types"]) if t == "full_attention"]
    dense = expert = embed = 0
    per_layer = [0] * L
    for k, e in hdr.items():
        if k == "__metadata__":
            continue
        b = e["data_offsets"][1] - e["data_offsets"][0]
        if ".mlp.experts." in k:
            expert += b
            per_layer[int(k.split(".")[2])] += b
        else:
            dense += b
        if k == "model.embed_tokens.weight":
            embed = b
    s = sum(x // E for x in per_layer)
    nl = L - len(full)
    hd = cfg.get("head_dim", cfg["hidden_size"] // cfg["num_attention_heads"])
    conv_dim = 2 * cfg["linear_num_key_heads"] * cfg["linear_key_head_dim"] + \
        cfg["linear_num_value_heads"] * cfg["linear_value_head_dim"]
    return {"tensors": len(hdr) - ("__metadata__" in hdr), "dense_bytes": dense, "expert_bytes": expert,
            "embedding_bytes": embed, "bytes_per_expert": s // L, "bytes_per_token": dense - embed + embed // V + K * s,
            "kv_bytes_per_token_f16": len(full) * 2 * cfg["num_key_value_heads"] * hd * 2,
            "state_bytes_deltanet": nl * cfg["linear_num_value_heads"] * cfg["linear_key_head_dim"] *
            cfg["linear_value_head_dim"] * 4,
            "state_bytes_conv": nl * conv_dim * (cfg["linear_conv_kernel_dim"] - 1) * 4}


def test_info(golden):
    for f in ("tiny", "small", "yarn"):
        d = os.path.join(golden, f)
        j = info_json(d)
        if not j:
            continue
        want = expected_info(d)
        bad = {k: (j[k], v) for k, v in want.items() if j[k] != v}
        report(not bad and j["check_ok"], "info %s: %s" % (f, "matches the hand computation (%d dense B, %d expert B, "
               "%d B/token)" % (want["dense_bytes"], want["expert_bytes"], want["bytes_per_token"]) if not bad else bad))
    r = run(["info", "-m", os.path.join(golden, "tiny")])
    report(r.returncode == 0 and "check: ok" in r.stdout and "read per decoded token" in r.stdout, "info text output")
    r = run(["info"])
    report(r.returncode == 2 and "no model" in r.stderr, "info without -m: " + r.stderr.strip().splitlines()[0])
    r = run(["info", "-m", "/nonexistent/model"])
    report(r.returncode == 1 and "/nonexistent/model" in r.stderr, "info on a missing path: " + r.stderr.strip())


def test_errors(tmp, tiny):
    out = os.path.join(tmp, "e")
    r = run(["synth", "-o", out, "--type", "q3_k", "--config", tiny])
    report(r.returncode == 2 and "q4_k_m" in r.stderr and not os.path.exists(out), "bad --type: " +
           r.stderr.strip().splitlines()[0])
    r = run(["synth", "-o", out, "--type", "q4_k_m", "--config", tiny])
    report(r.returncode == 1 and "safetensors holds" in r.stderr, "q4_k_m as safetensors: " + r.stderr.strip())
    r = run(["synth", "-o", out, "--config", "/nonexistent/config.json"])
    report(r.returncode == 1 and "/nonexistent/config.json" in r.stderr, "missing --config: " + r.stderr.strip())
    bad = os.path.join(tmp, "bad.json")
    open(bad, "w").write("{\"model_type\": \"qwen3_next\", ")
    r = run(["synth", "-o", out, "--config", bad])
    report(r.returncode == 1 and "bad.json" in r.stderr, "invalid --config: " + r.stderr.strip())
    r = run(["synth", "-o", out, "--config", tiny, "--experts", "2"])
    report(r.returncode == 1 and "num_experts_per_tok" in r.stderr, "top_k > experts: " + r.stderr.strip())
    r = run(["synth", "-o", out, "--layers", "0"])
    report(r.returncode == 2 and "--layers" in r.stderr, "--layers 0: " + r.stderr.strip().splitlines()[0])
    r = run(["synth", "-o", os.path.join(tmp, "bad.json", "sub"), "--config", tiny])
    report(r.returncode == 1 and "bad.json/sub" in r.stderr, "unwritable path: " + r.stderr.strip())
    r = run(["synth", "-o", out, "--dry-run"])
    report(r.returncode == 0 and "74391 tensors" in r.stdout and not os.path.exists(out), "--dry-run (80B): " +
           r.stdout.strip())
    free = shutil.disk_usage(tmp).free
    if free < 165e9:
        r = run(["synth", "-o", out])
        report(r.returncode == 1 and "not enough disk space: needs 16" in r.stderr and not os.path.exists(out),
               "full 80B bf16 on a disk with %.0f GB free: %s" % (free / 1e9, r.stderr.strip()))
    else:
        print("note: %.0f GB free: the not-enough-disk check needs a disk with less than 165 GB free" % (free / 1e9))


def test_interrupt(tmp, tiny):
    """Ctrl-C during a ~1 GB write: exit 130, nothing left."""
    out = os.path.join(tmp, "big.gguf")
    p = subprocess.Popen([QNEXT, "synth", "-o", out, "--config", tiny, "--type", "f32", "--vocab", "1000000",
                          "--progress", "--no-sync"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got = b""
    while b"\r" not in got and p.poll() is None:
        got += os.read(p.stderr.fileno(), 64)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    report(p.returncode == 130 and b"partial output was removed" in err and not os.path.exists(out),
           "Ctrl-C: exit %s, %s" % (p.returncode, (got + err).decode(errors="replace").strip().splitlines()[-1]))


def main():
    global QNEXT
    QNEXT, golden = sys.argv[1], sys.argv[2]
    tok = sys.argv[3] if len(sys.argv) > 3 and os.path.exists(sys.argv[3]) else None
    tiny = os.path.join(golden, "tiny")
    tmp = tempfile.mkdtemp(prefix="qn_synth_cli_")
    try:
        test_safetensors(tmp, tiny, tok)
        test_gguf(tmp, tiny)
        test_info(golden)
        test_errors(tmp, tiny)
        test_interrupt(tmp, tiny)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%s (%d testlib.failures)" % ("FAIL" if testlib.failures else "ok", testlib.failures))
    return 1 if testlib.failures else 0


if __name__ == "__main__":
    sys.exit(main())
