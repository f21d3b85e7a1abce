#!/usr/bin/env python3
"""bench_check.py QNEXT GOLDEN_DIR — `qnext bench --json` end to end (lavapipe): the JSON parses and its speeds are
positive on tiny (every expert resident), and on small with a 300 KB expert cache (streaming) the hit-rate and IO
fields are there and the IO ceiling is computed (ceiling tok/s = ceiling GB/s / bytes read per token). Also
--help and a bad option."""
import json
import math
import os
import subprocess
import sys


def bench(qnext, *args, env=None):
    cmd = [qnext, 'bench', *args, '--json']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    if p.returncode != 0:
        sys.exit(f'FAIL: {" ".join(cmd)} exited {p.returncode}\n{p.stderr}')
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        sys.exit(f'FAIL: {" ".join(cmd)}: stdout is not JSON ({e}):\n{p.stdout}')


def need(j, key, what, test):
    v = j.get(key)
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not test(v):
        sys.exit(f'FAIL: "{key}" = {v!r}, expected {what}\n{json.dumps(j, indent=1)}')
    return v


def main():
    qnext, golden = sys.argv[1], sys.argv[2]
    j = bench(qnext, '-m', f'{golden}/tiny', '--prompt', '20', '--decode', '4', '--reps', '1')
    for k in ('prefill_tok_s', 'decode_tok_s', 'weight_bytes_per_token', 'weight_gb_s', 'load_s', 'dense_bytes'):
        need(j, k, 'a positive number', lambda v: v > 0)
    used = need(j, 'device_bytes_used', 'more than the dense weights', lambda v: v > j['dense_bytes'])
    need(j, 'device_bytes_budget', 'at least the bytes in use', lambda v: v >= used)
    if j.get('streaming') is not False or 'io_ceiling_tok_s' in j or j.get('prompt_tokens') != 20:
        sys.exit(f'FAIL: tiny resident: streaming must be false, no ceiling fields, 20 prompt tokens\n{j}')
    print(f"tiny: prefill {j['prefill_tok_s']:.1f} tok/s, decode {j['decode_tok_s']:.1f} tok/s")

    # QNEXT_VRAM_BUDGET: the device budget every plan uses (a GPU shared with a desktop, or a smaller GPU's)
    env = dict(os.environ, QNEXT_VRAM_BUDGET='768M')
    j = bench(qnext, '-m', f'{golden}/tiny', '--prompt', '4', '--decode', '2', '--reps', '1', env=env)
    if j.get('device_bytes_budget') != 768 * 1048576:
        sys.exit(f"FAIL: QNEXT_VRAM_BUDGET=768M: device_bytes_budget {j.get('device_bytes_budget')}, want {768 << 20}")
    env['QNEXT_VRAM_BUDGET'] = '8 gigs'
    p = subprocess.run([qnext, 'bench', '-m', f'{golden}/tiny', '--prompt', '4', '--decode', '2', '--reps', '1'],
                       capture_output=True, text=True, timeout=120, env=env)
    if p.returncode == 0 or 'QNEXT_VRAM_BUDGET' not in p.stderr:
        sys.exit(f'FAIL: a malformed QNEXT_VRAM_BUDGET must fail naming it (exit {p.returncode}): {p.stderr}')
    print("QNEXT_VRAM_BUDGET: 768M budget reported, '8 gigs' refused")

    j = bench(qnext, '-m', f'{golden}/small', '--prompt', '20', '--decode', '4', '--reps', '1',
              '--expert-cache', '300K', '--stats')
    if j.get('streaming') is not True:
        sys.exit(f'FAIL: small with --expert-cache 300K must stream\n{j}')
    for k in ('prefill_tok_s', 'decode_tok_s', 'read_bytes_per_token', 'io_gb_s', 'io_ceiling_gb_s',
              'io_ceiling_bytes', 'io_ceiling_tok_s', 'decode_vs_ceiling'):
        need(j, k, 'a positive number', lambda v: v > 0)
    need(j, 'hit_rate', 'in [0, 1]', lambda v: 0 <= v <= 1)
    need(j, 'stall_ms_per_token', '>= 0', lambda v: v >= 0)
    need(j, 'slots', '< 64 experts x 8 layers', lambda v: 0 < v < 64 * 8)
    for k in ('prefetch_precision', 'prefetch_recall'):
        if k not in j:
            sys.exit(f'FAIL: "{k}" missing (null without --prefetch)\n{j}')
    want = j['io_ceiling_gb_s'] * 1e9 / j['read_bytes_per_token']
    if abs(j['io_ceiling_tok_s'] - want) > 1e-6 * want:
        sys.exit(f"FAIL: io_ceiling_tok_s {j['io_ceiling_tok_s']} != io_ceiling_gb_s / read_bytes_per_token {want}")
    ratio = j['decode_tok_s'] / j['io_ceiling_tok_s']
    if abs(j['decode_vs_ceiling'] - ratio) > 1e-6 * ratio:
        sys.exit(f"FAIL: decode_vs_ceiling {j['decode_vs_ceiling']} != {ratio}")
    print(f"small streaming: hit rate {j['hit_rate']:.3f}, {j['read_bytes_per_token'] / 1e6:.2f} MB read per token, "
          f"ceiling {j['io_ceiling_gb_s']:.2f} GB/s -> {j['io_ceiling_tok_s']:.0f} tok/s vs decode "
          f"{j['decode_tok_s']:.1f} tok/s")

    p = subprocess.run([qnext, 'bench', '--help'], capture_output=True, text=True)
    if p.returncode != 0 or '--prompt' not in p.stdout or '--json' not in p.stdout:
        sys.exit(f'FAIL: qnext bench --help: rc {p.returncode}\n{p.stdout}')
    p = subprocess.run([qnext, 'bench', '-m', f'{golden}/tiny', '--reps', '0'], capture_output=True, text=True)
    if p.returncode != 2 or '--reps' not in p.stderr:
        sys.exit(f'FAIL: --reps 0 must be refused with exit 2 naming --reps: rc {p.returncode}, {p.stderr!r}')
    print('PASS')


main()
