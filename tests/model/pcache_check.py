#!/usr/bin/env python3
"""pcache_check.py QNEXT MODEL_DIR — the pipeline cache is on disk as soon as a session's pipelines exist, not only
at exit: `qnext bench -v` in an empty QNEXT_CACHE_DIR warns that it compiles, reports "pipelines: N created", and
by then the cache file is there; the run is killed (as a timeout would) and the next run starts warm (no warning,
the same N pipelines)."""
import glob
import os
import signal
import subprocess
import sys
import tempfile


def bench_cmd(qnext, model, decode):
    return [qnext, 'bench', '-v', '-m', model, '--prompt', '8', '--decode', str(decode), '--reps', '1']


def main():
    qnext, model = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix='qnext-pcache-') as d:
        env = dict(os.environ, QNEXT_CACHE_DIR=d, QNEXT_PIPELINE_CACHE='1')
        p = subprocess.Popen(bench_cmd(qnext, model, 100000), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        cold, line = False, ''
        try:
            for line in p.stderr:
                cold = cold or 'pipeline cache empty' in line
                if 'pipelines:' in line:
                    break
            files = glob.glob(f'{d}/pipelines-*.bin')
            tmps = glob.glob(f'{d}/*.tmp')
            alive = p.poll() is None
        finally:
            p.kill()
            p.wait()
        if 'pipelines:' not in line:
            sys.exit(f'FAIL: no "pipelines:" line from {" ".join(p.args)}')
        print(f'cold: {line.strip()}')
        if not cold:
            sys.exit('FAIL: the first run in an empty cache directory did not warn that it compiles')
        if not alive:
            sys.exit('FAIL: bench ended before the check (it must still be running)')
        if len(files) != 1 or os.path.getsize(files[0]) == 0 or tmps:
            sys.exit(f'FAIL: mid-run: cache files {files}, temp files {tmps} (want one non-empty file, no temp)')
        n_cold = line.split('pipelines:')[1].split()[0]

        w = subprocess.run(bench_cmd(qnext, model, 2), env=env, capture_output=True, text=True, timeout=120)
        if w.returncode != 0:
            sys.exit(f'FAIL: warm run exited {w.returncode}\n{w.stderr}')
        warm = [ln for ln in w.stderr.splitlines() if 'pipelines:' in ln]
        if 'pipeline cache empty' in w.stderr or not warm or warm[0].split('pipelines:')[1].split()[0] != n_cold:
            sys.exit(f'FAIL: the run after the killed one must start warm with {n_cold} pipelines\n{w.stderr}')
        print(f'warm: {warm[0].strip()}')


if __name__ == '__main__':
    main()
