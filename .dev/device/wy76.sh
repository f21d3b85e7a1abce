# .dev/device/wy76.sh — lead (run 76): run 75's logits moved by 0.25 (rel L2) against run 74's binary: which is
# right? Each binary's two-pass delta rule against its own gdn_chunked (QNEXT_GDN_WY=0); test_gdn --bench's
# real-shape two-pass vs recurrent checks. ~200 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
toks=$(seq -s, 1 700)
for bin in qnext qnext_old; do
  for v in 0 1; do QNEXT_GDN_WY=$v timeout 90 $B/$bin logits -m $M --tokens $toks -o /tmp/l_${bin}_$v.npy > /tmp/h_l_${bin}_$v.txt 2>&1; echo "$bin WY=$v rc=$?"; done
done
python3 - <<'PY'
import numpy as np
L = {k: np.load('/tmp/l_%s.npy' % k).reshape(-1, 151936) for k in ['qnext_0', 'qnext_1', 'qnext_old_0', 'qnext_old_1']}
def cmp(a, b):
    x, y = L[a], L[b]
    print('%-12s vs %-12s rel L2 %.3e argmax equal %d / %d bit-identical %s' % (a, b, np.linalg.norm(x - y) / np.linalg.norm(x), (x.argmax(-1) == y.argmax(-1)).sum(), x.shape[0], bool((x == y).all())))
cmp('qnext_0', 'qnext_old_0'); cmp('qnext_0', 'qnext_1'); cmp('qnext_old_0', 'qnext_old_1'); cmp('qnext_1', 'qnext_old_1')
PY
timeout 150 $B/test_gdn --bench 1024 > /tmp/h_gb.txt 2>&1; echo "test_gdn --bench 1024 rc=$?"; grep -E "FAIL|^ok|^PASS" /tmp/h_gb.txt | tail -6
echo "== wy76: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy76.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
