#!/usr/bin/env bash
# .dev/pack.sh — release build of HEAD's tree (build/, -Dwerror=true) packed for the H100: .dev/bin.tar.xz holds
# qnext and the kernel test binaries the device fragments call (shaders are embedded). Carry it with .gl (loader debs
# + .gl/lib: liburing, cJSON, PCRE2, utf8proc, which the device image lacks).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d build ] || meson setup build -Dwerror=true -Dbuildtype=release >/dev/null
ninja -C build >/dev/null
d=$(mktemp -d)
cp build/tools/qnext build/tools/bench_pstats "$d/"
# PACK_TESTS="a b": only those test binaries (the carry limit is 64 MiB with the tracked tree's ~29)
for t in ${PACK_TESTS:-test_matmul test_attn test_embed test_gdn test_moe_q test_moe_qgrouped test_mv_norm test_qmatvec_i8 test_host_read test_attn_cm test_qmatmul test_stream}; do
  cp build/tests/kernels/$t "$d/" 2>/dev/null || cp build/tests/stream/$t "$d/"
done
strip "$d"/* 2>/dev/null || true
tar -C "$d" -cJf .dev/bin.tar.xz .
rm -rf "$d"
echo "packed $(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty): $(du -h .dev/bin.tar.xz | cut -f1)"
