#!/usr/bin/env python3
"""llamacpp_quantize.py — `qnext quantize` against the real llama-quantize (not run by CI: it needs llama.cpp's
shared libraries, e.g. `npm install @node-llama-cpp/linux-x64@3.22.1` (prebuilt CPU build of llama.cpp release
v0.5.0) and LIBDIR = node_modules/@node-llama-cpp/linux-x64/bins/linux-x64).

For each golden fixture and file type: `qnext quantize --type f32` writes the converter's F32 GGUF, llama.cpp's
llama_model_quantize() (called through ctypes: what llama-quantize runs) turns it into TYPE, and `qnext quantize
--type TYPE` writes its own. Every tensor must have the same name, shape and type in both (the type mix and
tensor_type_fallback), and every tensor stored as F32, F16, Q8_0, Q5_0 or Q5_1 must be byte-identical (those
quantizers follow ggml's reference rounding). Q4_0 and the K-quants are qnext's own quantizers: their bytes are
only counted. Results: docs/gguf-qwen3next.md §5.
Usage: llamacpp_quantize.py QNEXT GOLDEN_DIR LIBDIR [fixture ...]"""
import ctypes
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "quantize"))
import q5_fallback as Q  # noqa: E402  (its GGUF reader)

FTYPES = {"q8_0": 7, "q4_0": 2, "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18}  # llama_ftype
EXACT = {0, 1, 6, 7, 8}   # F32, F16, Q5_0, Q5_1, Q8_0
SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 6: (32, 22), 7: (32, 24), 8: (32, 34), 12: (256, 144), 13: (256, 176),
         14: (256, 210), 30: (1, 2)}


class Params(ctypes.Structure):
    """llama_model_quantize_params, opaque but for its first two fields (int32 nthread, enum llama_ftype ftype);
    256 bytes is more than the struct, which is returned through memory either way."""
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int32), ("rest", ctypes.c_uint8 * 248)]


def load(libdir):
    for name in ("libggml-base.so", "libggml.v0.5.0.so"):
        ctypes.CDLL(os.path.join(libdir, name), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(os.path.join(libdir, "libllama.v0.5.0.so"), mode=ctypes.RTLD_GLOBAL)
    lib.llama_model_quantize_default_params.restype = Params
    lib.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
    lib.llama_model_quantize.restype = ctypes.c_uint32
    lib.llama_backend_init()
    return lib


def llama_quantize(lib, src, dst, ftype):
    p = lib.llama_model_quantize_default_params()
    p.nthread, p.ftype = 1, ftype
    # llama.cpp logs to stderr: keep it out of this script's output
    fd, saved = os.open(os.devnull, os.O_WRONLY), os.dup(2)
    os.dup2(fd, 2)
    try:
        return lib.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    finally:
        os.dup2(saved, 2)
        os.close(fd)
        os.close(saved)


def compare(ours, theirs):
    da, _, ta = Q.read_gguf(ours)
    db, _, tb = Q.read_gguf(theirs)
    bad, exact, own_same, own_diff = [], 0, 0, 0
    for name in sorted(set(ta) | set(tb)):
        if name not in ta or name not in tb:
            bad.append("%s only in %s" % (name, "qnext's" if name in ta else "llama.cpp's"))
            continue
        (t, ne, oa), (t2, ne2, ob) = ta[name], tb[name]
        if (t, ne) != (t2, ne2):
            bad.append("%s: qnext %s %s, llama.cpp %s %s" % (name, Q.NAMES.get(t, t), ne, Q.NAMES.get(t2, t2), ne2))
            continue
        rows = 1
        for x in ne[1:]:
            rows *= x
        blk, size = SIZES[t]
        n = ne[0] // blk * size * rows
        same = da[oa:oa + n] == db[ob:ob + n]
        if t in EXACT:
            exact += same
            if not same:
                bad.append("%s (%s): bytes differ" % (name, Q.NAMES.get(t, t)))
        else:
            own_same += same
            own_diff += not same
    return bad, exact, own_same, own_diff, len(ta)


def main(qnext, golden, libdir, fixtures):
    lib = load(libdir)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fx in fixtures:
            folder = os.path.join(golden, fx)
            f32 = os.path.join(tmp, fx + "-f32.gguf")
            subprocess.run([qnext, "quantize", "-m", folder, "-o", f32, "--type", "f32", "--no-progress"], check=True,
                           capture_output=True)
            for typ, ft in FTYPES.items():
                ours, theirs = os.path.join(tmp, "ours.gguf"), os.path.join(tmp, "theirs.gguf")
                for p in (ours, theirs):
                    if os.path.exists(p):
                        os.remove(p)
                r = subprocess.run([qnext, "quantize", "-m", folder, "-o", ours, "--type", typ, "--no-progress"],
                                   capture_output=True, text=True)
                rc = llama_quantize(lib, f32, theirs, ft)
                if r.returncode or rc:
                    # newer llama-quantize builds stop on Q4_0 rows that 32 does not divide; qnext (and v0.5.0) use F16
                    print("%-6s %-7s qnext rc %d, llama.cpp rc %d%s" % (fx, typ, r.returncode, rc,
                          " (expected: no Q4_0 fallback in llama.cpp)" if typ == "q4_0" and rc else ""))
                    failures += not (typ == "q4_0" and rc and not r.returncode)
                    continue
                bad, exact, own_same, own_diff, n = compare(ours, theirs)
                print("%-6s %-7s %d tensors, types equal%s; F32/F16/Q8_0/Q5_0/Q5_1 byte-identical: %d; "
                      "Q4_0/K-quant (qnext's own quantizers): %d identical, %d differ" %
                      (fx, typ, n, "" if not bad else " EXCEPT", exact, own_same, own_diff))
                for b in bad[:6]:
                    print("    " + b)
                failures += bool(bad)
    print("%d failures" % failures if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:] or ["tiny", "small", "yarn"]))
