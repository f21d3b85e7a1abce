#!/usr/bin/env python3
"""profile_check.py QNEXT GOLDEN_DIR — `qnext bench --profile` on the tiny fixture (lavapipe): the op families of a
decode step are all there with positive GPU time, and with QNEXT_PROFILE_DISPATCH=1 every dispatch gets its own row
(kernel name and grid): the decode rows name the kernels of each layer kind, one per layer and token. Both for the
default decode graph (the GDN core in one gdn_decode, attn_prep inside attn_decode_prep) and the unfused one
(QNEXT_GDN_FUSE=0 QNEXT_ATTN_FOLD=0: gdn_conv, gdn_recurrent, gated_rmsnorm, attn_prep, attn_decode). And the two
diagnostics beside the profile: QNEXT_DIAG_SKIP leaves the named kernels out of the recording (with a warning), and -vv
lists every pipeline made as KERNEL:SPEC,... (bench_pstats' syntax)."""
import os
import re
import subprocess
import sys

ROW = re.compile(r'^  (\S.*?)\s+(-?[0-9.]+)\s+(-?[0-9.]+)\s+([0-9.]+)$')


def profile(qnext, golden, per_dispatch, extra, verbose=False, err=None):
    env = dict(os.environ, QNEXT_PROFILE_DISPATCH='1' if per_dispatch else '0', **extra)
    cmd = [qnext, 'bench', '-m', f'{golden}/tiny', '--prompt', '20', '--decode', '4', '--reps', '1', '--profile']
    cmd += ['-vv'] if verbose else []
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    if err is not None:
        err.append(p.stderr)
    if p.returncode != 0:
        sys.exit(f'FAIL: {" ".join(cmd)} exited {p.returncode}\n{p.stderr}')
    rows = {}
    for line in p.stdout.splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    if not rows:
        sys.exit(f'FAIL: no profile rows in the output of {" ".join(cmd)}:\n{p.stdout}')
    return rows


# (extra env, decode families with their regions per decode token, per-dispatch decode kernel prefixes per token)
GRAPHS = (
    ({}, {'gdn.fused': 3, 'attn.core': 1}, (('gdn_decode', 3), ('attn_decode_prep', 1))),
    ({'QNEXT_GDN_FUSE': '0', 'QNEXT_ATTN_FOLD': '0'}, {'gdn.conv': 3, 'gdn.rule': 3, 'gdn.norm': 3, 'attn.core': 1},
     (('gdn_recurrent', 3), ('attn_decode ', 1), ('gdn_conv', 3))),
)


def check(qnext, golden, extra, fams, kernels):
    what = ' '.join(f'{k}={v}' for k, v in extra.items()) or 'defaults'
    fam = profile(qnext, golden, False, extra)
    # tiny: 4 layers (3 linear-attention, 1 full attention), every layer a MoE
    want = dict({'linear': None, 'moe.experts': 4, 'head': 1}, **fams)
    for name, n in want.items():
        if name not in fam or fam[name][0] <= 0:
            sys.exit(f'FAIL ({what}): family "{name}" missing or without decode time: {fam.get(name)}')
        if n is not None and fam[name][2] != n:
            sys.exit(f'FAIL ({what}): family "{name}": {fam[name][2]} regions per decode token, expected {n}')
    if any(' ' in k and re.search(r'\d+x\d+$', k) for k in fam):
        sys.exit(f'FAIL ({what}): per-dispatch rows without QNEXT_PROFILE_DISPATCH: {sorted(fam)}')
    per = profile(qnext, golden, True, extra)
    kern = {k: v for k, v in per.items() if re.search(r' \d+x\d+$', k)}
    dec = {k: v for k, v in kern.items() if v[2] > 0}
    for prefix, n in kernels:
        hit = [v for k, v in dec.items() if k.startswith(prefix)]
        if sum(v[2] for v in hit) != n or any(v[0] <= 0 for v in hit):
            sys.exit(f'FAIL ({what}): per-dispatch decode rows of "{prefix}": {hit}, expected {n} per token with time')
    if not any(k.startswith('gdn_chunked') and v[1] > 0 for k, v in kern.items()):
        sys.exit(f'FAIL ({what}): no prompt-time row for the chunked delta rule: {sorted(kern)}')
    print(f'{what}: {len(fam)} families; {len(kern)} kernel rows, {sum(v[2] for v in dec.values()):.0f} dispatches '
          f'per decode token')


def check_diag(qnext, golden):
    skip = 'gdn_decode,attn_decode'
    err = []
    per = profile(qnext, golden, True, {'QNEXT_DIAG_SKIP': skip}, verbose=True, err=err)
    left = [k for k in per if k.startswith(('gdn_decode', 'attn_decode'))]
    if left:
        sys.exit(f'FAIL (QNEXT_DIAG_SKIP={skip}): rows of skipped kernels: {left}')
    if not any(k.startswith('moe_') for k in per):
        sys.exit(f'FAIL (QNEXT_DIAG_SKIP={skip}): the other kernels are gone too: {sorted(per)}')
    if f'QNEXT_DIAG_SKIP={skip}' not in err[0] or 'WRONG' not in err[0]:
        sys.exit(f'FAIL (QNEXT_DIAG_SKIP={skip}): no warning on stderr:\n{err[0][-2000:]}')
    pipes = re.findall(r'debug: pipeline ([a-z0-9_]+)(:[0-9]+(?:,[0-9]+)*)?$', err[0], re.M)
    if not any(n == 'gdn_decode' and sp for n, sp in pipes):
        sys.exit(f'FAIL (-vv): no "pipeline gdn_decode:SPEC" line among {len(pipes)} pipeline lines')
    print(f'QNEXT_DIAG_SKIP={skip}: {len(per)} rows, none of those kernels; -vv: {len(pipes)} pipelines listed')


def main():
    qnext, golden = sys.argv[1], sys.argv[2]
    for extra, fams, kernels in GRAPHS:
        check(qnext, golden, extra, fams, kernels)
    check_diag(qnext, golden)


if __name__ == '__main__':
    main()
