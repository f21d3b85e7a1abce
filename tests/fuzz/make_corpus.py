#!/usr/bin/env python3
"""make_corpus.py GOLDEN_DIR OUT_DIR — writes the seed corpus of fuzz_loader.c (selector byte + file).

C_*: config.json texts (the fixtures' legacy form and the newer rope_parameters/layer_types form);
S_*: small safetensors files: every tensor of fuzz_loader.c's micro config, and one of each dtype
(incl. an F8_E4M3 weight with weight_scale_inv block scales)."""
import json
import os
import random
import struct
import sys


def st_bytes(tensors):
    """tensors: list of (name, dtype, shape, raw bytes) -> safetensors file bytes."""
    hdr, off, data = {"__metadata__": {"format": "pt"}}, 0, b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def bf16(shape, rnd):
    n = 1
    for d in shape:
        n *= d
    return b"".join(struct.pack("<f", rnd.gauss(0, 1))[2:] for _ in range(n))


def micro(rnd):
    H, t = 4, []
    def add(name, *shape):
        t.append((name, "BF16", list(shape), bf16(shape, rnd)))
    add("model.embed_tokens.weight", 8, H); add("model.norm.weight", H); add("lm_head.weight", 8, H)
    for i, full in ((0, False), (1, True)):
        p = "model.layers.%d." % i
        add(p + "input_layernorm.weight", H); add(p + "post_attention_layernorm.weight", H)
        if full:
            add(p + "self_attn.q_proj.weight", 8, H); add(p + "self_attn.k_proj.weight", 4, H)
            add(p + "self_attn.v_proj.weight", 4, H); add(p + "self_attn.o_proj.weight", H, 4)
            add(p + "self_attn.q_norm.weight", 4); add(p + "self_attn.k_norm.weight", 4)
        else:
            add(p + "linear_attn.in_proj_qkvz.weight", 8, H); add(p + "linear_attn.in_proj_ba.weight", 2, H)
            add(p + "linear_attn.conv1d.weight", 6, 1, 2); add(p + "linear_attn.dt_bias", 1)
            add(p + "linear_attn.A_log", 1); add(p + "linear_attn.norm.weight", 2)
            add(p + "linear_attn.out_proj.weight", H, 2)
        add(p + "mlp.gate.weight", 2, H)
        for e in range(2):
            add(p + "mlp.experts.%d.gate_proj.weight" % e, 2, H); add(p + "mlp.experts.%d.up_proj.weight" % e, 2, H)
            add(p + "mlp.experts.%d.down_proj.weight" % e, H, 2)
        add(p + "mlp.shared_expert.gate_proj.weight", 2, H); add(p + "mlp.shared_expert.up_proj.weight", 2, H)
        add(p + "mlp.shared_expert.down_proj.weight", H, 2); add(p + "mlp.shared_expert_gate.weight", 1, H)
    add("mtp.fc.weight", H, 2 * H)
    return t


def dtypes(rnd):
    return [
        ("f16", "F16", [3], struct.pack("<3e", 1.5, -2.0, 65504.0)),
        ("f32", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
        ("i64", "I64", [2], struct.pack("<2q", -5, 1 << 40)),
        ("u8", "U8", [3], bytes([0, 7, 255])),
        ("b", "BOOL", [2], bytes([0, 1])),
        ("w.weight", "F8_E4M3", [3, 5], bytes(rnd.randrange(256) for _ in range(15))),
        ("w.weight_scale_inv", "F32", [1, 1], struct.pack("<f", 0.5)),
        ("s", "I32", [], struct.pack("<i", 9)),
        ("empty", "BF16", [0, 4], b""),
    ]


def main():
    golden, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rnd = random.Random(3)
    for name in ("tiny", "yarn"):
        with open(os.path.join(golden, name, "config.json"), "rb") as f:
            open(os.path.join(out, "C_%s.json" % name), "wb").write(b"C" + f.read())
    cfg = json.load(open(os.path.join(golden, "tiny", "config.json")))
    for k in ("rope_theta", "rope_scaling", "partial_rotary_factor", "full_attention_interval"):
        cfg.pop(k, None)
    cfg["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e7, "partial_rotary_factor": 0.25}
    cfg["layer_types"] = ["linear_attention"] * 3 + ["full_attention"]
    open(os.path.join(out, "C_v5.json"), "wb").write(b"C" + json.dumps(cfg).encode())
    open(os.path.join(out, "S_micro.bin"), "wb").write(b"S" + st_bytes(micro(rnd)))
    open(os.path.join(out, "S_dtypes.bin"), "wb").write(b"S" + st_bytes(dtypes(rnd)))


if __name__ == "__main__":
    main()
