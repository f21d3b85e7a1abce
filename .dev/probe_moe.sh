#!/usr/bin/env bash
# .dev/probe_moe.sh — test_moe_qgrouped binaries whose grouped tensor-core MoE kernel (moe_qgrouped_cm.comp) leaves out
# one part of its k loop, packed into .dev/probe.tar.xz for `test_moe_qgrouped_pN --bench-cm 5 LAYOUT` (timing only:
# the outputs are wrong): 1 no fragment loads / multiplies, 2 no global loads (fetch writes constants), 3 no weight
# decode (the raw words go to the shared tile), 4 no shared stores (the loads kept alive behind a never-true test),
# 5 no barriers in the k loop. The shader is restored after.
set -euo pipefail
cd "$(dirname "$0")/.."
sh=shaders/moe_qgrouped_cm.comp
cp $sh /tmp/mq_orig.comp
trap 'cp /tmp/mq_orig.comp $sh' EXIT
d=$(mktemp -d)
for p in 1 2 3 4 5; do
  python3 - "$p" <<'PY'
import sys
p = int(sys.argv[1]); f = 'shaders/moe_qgrouped_cm.comp'; s = open('/tmp/mq_orig.comp').read()
def rep(old, new):
    global s
    assert s.count(old) == 1, old[:50]
    s = s.replace(old, new)
never = "(pc.E == 0x7fffffffu)"
if p == 1:
    rep("        [[unroll]] for (uint kk = 0u; kk < QN_BK; kk += 16u) { // the fragments of this k-step",
        "        if " + never + " [[unroll]] for (uint kk = 0u; kk < QN_BK; kk += 16u) { // the fragments of this k-step")
if p == 2:
    rep("""    if (PSW != 0u && !w_dense) { // one uniform switch around all the loads (in-range words: index 0 where unused)
        QN_POOL_SWITCH(w_pool, CM_W_LOADS)
    }""", """    if (PSW != 0u && !w_dense) {
        [[unroll]] for (uint i = 0u; i < WPT; i++) wr[i] = qt_raw(ia[i] ^ uvec4(k0), ib[i] ^ uvec4(lid));
    }""")
    rep("""        xr[i] = xb != ~0u && col < w_kd ? xh8[(xb + col) / 8u] : uvec4(0u);""",
        """        xr[i] = uvec4(xb + col);""")
    rep("""        xr[i][0] = xb != ~0u && col < w_kd ? x_load4(xb, col) : vec4(0.0);
        xr[i][1] = xb != ~0u && col + 4u < w_kd ? x_load4(xb, col + 4u) : vec4(0.0);""",
        """        xr[i][0] = vec4(float(xb + col) * 1e-6); xr[i][1] = xr[i][0];""")
if p == 3:
    rep("""            else qt_decode(ws[i], rb, k0 + kc, a, b);""",
        """            else { a = uintBitsToFloat(ws[i].a & 0x3c003c00u); b = uintBitsToFloat(ws[i].b & 0x3c003c00u); }""")
if p == 4:
    rep("""        s_x[(buf * BT + tt) * SK4 + kc] = xs[i];""", """        if """ + never + """ s_x[(buf * BT + tt) * SK4 + kc] = xs[i];""")
    rep("""        s_x[(buf * BT + tt) * SK4 + kc] = qn_pack_f16x8(lo, hi);""", """        if """ + never + """ s_x[(buf * BT + tt) * SK4 + kc] = qn_pack_f16x8(lo, hi);""")
    rep("""        s_w[(buf * NR + p) * SK4 + kc / 8u] = qn_pack_f16x8(a, b);""", """        if """ + never + """ s_w[(buf * NR + p) * SK4 + kc / 8u] = qn_pack_f16x8(a, b);""")
if p == 5:
    rep("""        if (NBUF == 1u) barrier(); // everyone is done with the buffer before it is rewritten""", "")
    rep("""            store((st + 1u) * QN_BK, r0, lid, NBUF == 2u ? 1u - cur : 0u);
        }
        barrier();""", """            store((st + 1u) * QN_BK, r0, lid, NBUF == 2u ? 1u - cur : 0u);
        }""")
open(f, 'w').write(s)
PY
  ninja -C build tests/kernels/test_moe_qgrouped >/dev/null
  cp build/tests/kernels/test_moe_qgrouped $d/test_moe_qgrouped_p$p
done
cp /tmp/mq_orig.comp $sh
ninja -C build >/dev/null
strip $d/* || true
tar -C $d -cJf .dev/probe.tar.xz .
rm -rf $d
echo "probe binaries: $(du -h .dev/probe.tar.xz | cut -f1)"
