#!/usr/bin/env python3
"""policy_cli.py QNEXT FIXTURE_DIR WORKDIR — the expert-cache policy options through `qnext generate`.

Resident greedy ids are the reference. Then, streaming at a small --expert-cache:
  --expert-trace FILE            same ids; FILE is a usage file whose counts sum to tokens x top_k x layers
  --expert-hot 4 --expert-hot-from FILE --expert-policy lfu   same ids ("4 pinned experts" logged with -v)
and refusals with a clear message and a non-zero exit: an unknown policy, --expert-hot without
--expert-hot-from, a malformed usage file (named with its line), --expert-trace on a resident model, and
`--help` lists every option; then the host tier (`--experts host`, with a VRAM cache and LFU, `QNEXT_EXPERTS=host`)
gives the same ids and `--experts disk` is refused.
"""
import json
import os
import subprocess
import sys

failures = 0


def report(ok, what):
    global failures
    print("%-4s %s" % ("ok" if ok else "FAIL", what))
    failures += 0 if ok else 1


def run(args):
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def main():
    qnext, fixture, work = sys.argv[1:4]
    os.makedirs(work, exist_ok=True)
    cfg = json.load(open(os.path.join(fixture, "config.json")))
    L, K = cfg["num_hidden_layers"], cfg["num_experts_per_tok"]
    toks, n = "5,17,42,7", 6
    base = [qnext, "generate", "-m", fixture, "--tokens", toks, "-n", str(n), "--greedy", "--ids"]
    ref = run(base)
    report(ref.returncode == 0 and ref.stdout.strip(), "resident greedy ids: %s" % ref.stdout.strip())
    trace = os.path.join(work, "usage.txt")
    if os.path.exists(trace):
        os.remove(trace)
    cache = ["--expert-cache", "400K"]
    p = run(base + cache + ["--expert-trace", trace])
    report(p.returncode == 0 and p.stdout == ref.stdout, "--expert-trace: same ids (%s)" % p.stderr.strip()[-200:])
    total, header = 0, []
    if os.path.exists(trace):
        for line in open(trace):
            if line.startswith("#"):
                continue
            f = line.split()
            if len(header) < 2:
                header.append(line.strip())
            else:
                total += int(f[2])
    tokens = len(toks.split(",")) + n - 1   # the last generated token is not run through the model
    report(header[:1] == ["qnext-expert-usage 1"] and total == tokens * K * L,
           "usage file: header %s, %d choices (tokens %d x top-k %d x layers %d = %d)" %
           (header, total, tokens, K, L, tokens * K * L))
    p = run(base + cache + ["--expert-hot", "4", "--expert-hot-from", trace, "--expert-policy", "lfu", "-v"])
    report(p.returncode == 0 and p.stdout == ref.stdout and "4 pinned experts" in p.stderr,
           "--expert-hot 4 --expert-policy lfu: same ids, %s" %
           ([x for x in p.stderr.splitlines() if "pinned" in x] or p.stderr.strip()[-200:]))
    p = run(base + cache + ["--expert-policy", "mru"])
    report(p.returncode != 0 and "'mru' is not one of lru, lfu" in p.stderr, "unknown policy: %s" % p.stderr.strip())
    p = run(base + cache + ["--expert-hot", "4"])
    report(p.returncode != 0 and "--expert-hot-from" in p.stderr, "--expert-hot alone: %s" % p.stderr.strip())
    bad = os.path.join(work, "bad.txt")
    with open(bad, "w") as f:
        f.write("qnext-expert-usage 1\nlayers %d experts %d\n0 99999 1\n" % (L, cfg["num_experts"]))
    p = run(base + cache + ["--expert-hot", "4", "--expert-hot-from", bad])
    report(p.returncode != 0 and bad + ":3:" in p.stderr, "bad usage file: %s" % p.stderr.strip())
    p = run(base + ["--expert-trace", trace])
    report(p.returncode != 0 and "resident" in p.stderr, "--expert-trace on a resident model: %s" % p.stderr.strip())
    h = run([qnext, "generate", "--help"]).stdout + run([qnext, "bench", "--help"]).stdout
    report(all(h.count(o) >= 2 for o in ("--expert-policy", "--expert-trace", "--expert-hot ", "--expert-hot-from",
                                          "--experts WHERE")),
           "generate and bench --help list the policy options and --experts")
    # the host tier (helper host): --experts host alone, with a VRAM cache (lfu), QNEXT_EXPERTS=host, a bad value
    p = run(base + ["--experts", "host"])
    report(p.returncode == 0 and p.stdout == ref.stdout, "--experts host: same ids %s" % p.stderr.strip()[-200:])
    p = run(base + ["--experts", "host", "--expert-cache", "400K", "--expert-policy", "lfu", "--stats"])
    report(p.returncode == 0 and p.stdout.startswith(ref.stdout.strip()) and "served from VRAM" in p.stdout + p.stderr,
           "--experts host --expert-cache 400K --expert-policy lfu: same ids, stats name the VRAM share")
    p = subprocess.run(base + ["-v"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, QNEXT_EXPERTS="host"))
    report(p.returncode == 0 and p.stdout == ref.stdout and "host tier:" in p.stderr,
           "QNEXT_EXPERTS=host: same ids, the load log names the host tier")
    p = run(base + ["--experts", "disk"])
    report(p.returncode != 0 and "'disk' is not one of device, host" in p.stderr, "--experts disk: %s" % p.stderr.strip())
    print("%d failure(s)" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
