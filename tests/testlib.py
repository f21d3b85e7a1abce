"""testlib.py — helpers shared by the Python tests (the counterpart of testutil.h), standard library only:
report() prints one ok / FAIL line and counts failures (testlib.failures), read_npy() reads what `qnext logits -o`
writes, read_safetensors() a golden fixture's expected.safetensors, rel_l2() compares two float sequences.
A test in a subfolder imports it with
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
"""
import json
import math
import struct

failures = 0


def report(ok, what):
    global failures
    print(("ok   " if ok else "FAIL ") + what)
    failures += 0 if ok else 1


def read_npy(path):
    """A little-endian float32, C-order .npy file (format 1.x or 2.x): (shape, values)."""
    with open(path, "rb") as f:
        raw = f.read()
    assert raw[:6] == b"\x93NUMPY", "%s: not a .npy file" % path
    at = 10 if raw[6] == 1 else 12
    hlen = struct.unpack("<H" if raw[6] == 1 else "<I", raw[8:at])[0]
    hdr = raw[at:at + hlen].decode("latin1")
    assert "'<f4'" in hdr and "'fortran_order': False" in hdr, hdr
    shape = tuple(int(x) for x in hdr.split("'shape': (")[1].split(")")[0].split(",") if x.strip())
    vals = struct.unpack("<%df" % ((len(raw) - at - hlen) // 4), raw[at + hlen:])
    return shape, vals


def read_safetensors(path):
    """F32 / I32 tensors of a safetensors file: {name: (shape, values)}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in hdr.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        code = {"F32": "f", "I32": "i"}[e["dtype"]]
        out[name] = (e["shape"], struct.unpack("<%d%s" % ((en - b) // 4, code), data[b:en]))
    return out


def rel_l2(a, b):
    d = sum((x - y) ** 2 for x, y in zip(a, b))
    r = sum(y * y for y in b)
    return math.sqrt(d / r)
