#!/usr/bin/env bash
# .dev/probe_wy.sh — test_gdn binaries whose gdn_chunk_wy_inv stops early (probe 1: after invert_l, 2: after build_m
# (run 74's tree also had 3: after make_p, since removed); each writes a few shared values so nothing is optimized away) packed into .dev/probe.tar.xz for
# `test_gdn_pN --bench-wy 4096`: pass 1's time per phase by difference. The shader is restored after.
set -euo pipefail
cd "$(dirname "$0")/.."
sh=shaders/gdn_chunk_wy.comp
cp $sh /tmp/wy_orig.comp
trap 'cp /tmp/wy_orig.comp $sh' EXIT
d=$(mktemp -d)
for p in 1 2; do
  python3 - "$p" <<'PY'
import sys
p = int(sys.argv[1]); f = 'shaders/gdn_chunk_wy.comp'; s = open('/tmp/wy_orig.comp').read()
out = "{ if (lid < 64u) wy[rec + lid] = M[(lid * 65u) % 4096u] + kq4[lid].x + gc[lid] + rs4[lid].x; return; }\n"
marks = {1: "    invert_l();\n", 2: "    write_kf(rec + 2u * C * dk + C * dv);\n"}
m = marks[p]; assert m in s
s = s.replace(m, m + "    " + out)
open(f, 'w').write(s)
PY
  ninja -C build tests/kernels/test_gdn >/dev/null
  cp build/tests/kernels/test_gdn $d/test_gdn_p$p
done
cp /tmp/wy_orig.comp $sh
ninja -C build >/dev/null
strip $d/* || true
tar -C $d -cJf .dev/probe.tar.xz .
rm -rf $d
echo "probe binaries: $(du -h .dev/probe.tar.xz | cut -f1)"
