#!/usr/bin/env python3
"""stream_gguf.py QNEXT CONVERTER TEST_STREAM FIXTURE_DIR WORKDIR KIND — GGUF expert streaming == resident.

Writes one GGUF made from the fixture's shapes and runs test_stream on it (every budget down to the minimum,
prefetch on and off, prefill and decode, --io auto (direct on the build directory's filesystem) and buffered,
IO faults, EIO, a too-small budget, the file truncated after load: all bit-identical to the resident GGUF or the
stated error). KIND:
  syn-q4_k_m  `qnext synth` with hidden / expert FF 256 (K-quant blocks fit): Q4_K gate/up, down Q4_K in layers
              0-1 and Q6_K in 2-3 (llama.cpp's Q4_K_M mix), so expert sizes differ per layer
  syn-q8_0    the same shapes as Q8_0 blocks (not in CI: same code path, 107 s)
  tiny-f32    the golden fixture as an F32 GGUF (tests/unit/test_gguf_qwen3next.c --write-gguf): f32 experts
"""
import os
import subprocess
import sys


def main():
    qnext, conv, test_stream, fixture, work, kind = sys.argv[1:7]
    os.makedirs(work, exist_ok=True)
    path = os.path.join(work, kind + ".gguf")
    src, typ = kind.split("-", 1)
    if src == "syn":
        cmd = [qnext, "synth", "-o", path, "--type", typ, "--config", fixture, "--hidden", "256", "--moe-inter", "256",
               "--shared-inter", "256", "--experts", "8", "--force", "--no-progress", "--no-sync"]
    else:
        cmd = [conv, fixture, "--write-gguf", path, typ]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode:
        print("FAIL writing %s (%d): %s\n%s" % (path, p.returncode, " ".join(cmd), p.stderr[-800:]))
        return 1
    rc = subprocess.run([test_stream, fixture, path], timeout=600).returncode
    os.remove(path)
    return rc


if __name__ == "__main__":
    sys.exit(main())
