#!/usr/bin/env python3
"""run_cli.py QNEXT CASE [DATA_DIR] — one CLI contract case of `qnext devices` / `qnext selftest`.

Each case runs the command (with lavapipe + validation from the test environment, plus the case's own
variables), then checks the exit status and that the output contains the expected text. Exit 0 = pass."""
import json
import os
import subprocess
import sys
import tempfile

MALFORMED = '{ "name": "broken", "match": {}, "memory": { "weights_fraction": 0.1 '

# name: (args, extra env, expected exit status (or 'nonzero'), text the output must contain, extra check)
CASES = {
    'devices': (['devices'], {}, 0, 'board: lavapipe', None),
    'devices_json': (['devices', '--json'], {}, 0, '"board"', 'json'),
    'devices_cm_shapes': (['devices'], {}, 0, 'cooperative matrix shapes (VK_NV_cooperative_matrix, subgroup scope): none', None),
    'devices_help': (['devices', '--help'], {}, 0, 'usage: qnext devices', None),
    'devices_extra_arg': (['devices', 'what'], {}, 2, "unexpected argument 'what'", None),
    'devices_no_driver': (['devices'], {'VK_DRIVER_FILES': '/nonexistent/icd.json',
                                        'VK_ICD_FILENAMES': '/nonexistent/icd.json'}, 'nonzero', 'no Vulkan device', None),
    'devices_no_loader': (['devices'], {'QNEXT_VULKAN_LOADER': '/nonexistent/libvulkan.so.1'}, 'nonzero',
                          'the Vulkan loader /nonexistent/libvulkan.so.1 (QNEXT_VULKAN_LOADER) could not be loaded', None),
    'selftest_no_loader': (['selftest'], {'QNEXT_VULKAN_LOADER': '/nonexistent/libvulkan.so.1'}, 'nonzero',
                           'could not be loaded', None),
    'devices_custom_loader': (['devices'], {'QNEXT_VULKAN_LOADER': 'libvulkan.so.1'}, 0, 'board: lavapipe', None),
    'devices_unknown_board': (['devices', '--board', 'no-such-board'], {}, 'nonzero', "unknown board 'no-such-board'", None),
    'devices_malformed_board': (['devices', '--board', '@MALFORMED@'], {}, 'nonzero', 'not valid JSON', None),
    'selftest': (['selftest', '--iters', '2'], {}, 0, '0 failed, 0 validation message(s)', None),
    'selftest_bench_quick': (['selftest', '--bench', '--quick', '--iters', '2'], {}, 0, 'GB/s', None),
    # the sweep's board row measures what the bench line measures (same spec values, bytes, copies, runs)
    'selftest_sweep_board': (['selftest', '--bench', '--sweep', '--quick', '--sweep-only', 'q4_k', '--iters', '1'], {}, 0,
                             '(board)', 'sweep_board'),
    'selftest_help': (['selftest', '--help'], {}, 0, 'usage: qnext selftest', None),
    'selftest_no_driver': (['selftest'], {'VK_DRIVER_FILES': '/nonexistent/icd.json',
                                          'VK_ICD_FILENAMES': '/nonexistent/icd.json'}, 'nonzero', 'no Vulkan device', None),
    'selftest_device_out_of_range': (['selftest', '--device', '7'], {}, 'nonzero', 'device index 7 is out of range', None),
    'selftest_device_no_name': (['selftest', '--device', 'no-such-gpu'], {}, 'nonzero',
                                "no Vulkan device name contains 'no-such-gpu'", None),
    'selftest_unknown_board': (['selftest', '--board', 'nope'], {}, 'nonzero', "unknown board 'nope'", None),
    'selftest_malformed_board': (['selftest', '--board', '@MALFORMED@'], {}, 'nonzero', 'not valid JSON', None),
    'selftest_bad_iters': (['selftest', '--iters', 'x'], {}, 2, "'x' is not an integer", None),
    # validation asked for but the layer cannot be found: a loud skip (77), never a silent pass
    'selftest_no_layer': (['selftest'], {'QNEXT_VALIDATION': '1', 'VK_LAYER_PATH': '/nonexistent'}, 77,
                          'not installed', None),
}


def sweep_board_problems(out):
    """The detail line under `bench matvec_q4_k <lm_head>` and under the sweep's board row of matvec_q4_k must
    agree but for the GB/s figure: one measuring function, the same layout, bytes, copies and runs."""
    lines = out.splitlines()

    def detail_after(pred):
        for i, l in enumerate(lines[:-1]):
            if pred(l) and lines[i + 1].lstrip().startswith('->'):
                d = lines[i + 1].split('GB/s', 1)
                return d[1].strip() if len(d) == 2 else None
        return None
    bench = detail_after(lambda l: l.split()[1:3] == ['bench', 'matvec_q4_k'] if len(l.split()) > 2 else False)
    board_row = [l for l in lines if l.startswith('sweep matvec_q4_k') and l.endswith('(board)')]
    sweep = detail_after(lambda l: l.startswith('sweep matvec_q4_k') and l.endswith('(board)'))
    problems = []
    if not bench:
        problems.append('no detail line under "bench matvec_q4_k"')
    if not sweep or len(board_row) != 1:
        problems.append('not exactly one sweep row of matvec_q4_k marked (board), with a detail line')
    if bench and sweep and bench != sweep:
        problems.append(f'bench measured "{bench}", the sweep\'s board row "{sweep}"')
    if board_row and sweep:  # the row's own spec columns are the layout in its detail line
        cols = board_row[0].split('|')[0].split()[2:]
        if ' '.join(cols) not in sweep:
            problems.append(f'the board row says "{" ".join(cols)}", its detail "{sweep}"')
    return problems


def main():
    qnext, case = sys.argv[1], sys.argv[2]
    args, extra, want_rc, want_text, check = CASES[case]
    env = dict(os.environ)
    env.update(extra)
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, 'malformed.json')
        with open(bad, 'w') as f:
            f.write(MALFORMED)
        args = [bad if a == '@MALFORMED@' else a for a in args]
        p = subprocess.run([qnext] + args, env=env, capture_output=True, text=True, timeout=600)
    out = p.stdout + p.stderr
    print(f'$ qnext {" ".join(args)}\n{out}\nexit status {p.returncode}')
    ok_rc = p.returncode != 0 if want_rc == 'nonzero' else p.returncode == want_rc
    problems = []
    if not ok_rc:
        problems.append(f'exit status {p.returncode}, expected {want_rc}')
    if p.returncode < 0:
        problems.append('killed by a signal (crash)')
    if want_text not in out:
        problems.append(f'output lacks "{want_text}"')
    if check == 'json':
        try:
            devs = json.loads(p.stdout)
            if not isinstance(devs, list) or not devs or devs[0].get('board') != 'lavapipe':
                problems.append('JSON is not a non-empty array whose first device has board "lavapipe"')
        except ValueError as e:
            problems.append(f'stdout is not valid JSON: {e}')
    if check == 'sweep_board':
        problems += sweep_board_problems(p.stdout)
    for m in problems:
        print('FAIL:', m)
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())
