# .dev/device/ovl101.sh — lead (run 101): the delta rule's pass 1 of segment s+1 beside pass 2 of segment s (two
# record buffers; QNEXT_GDN_WY_OVERLAP=0: one, as before): test_gdn on the driver, logits, prefill A/B.
h_t0=$(date +%s)
{
timeout 120 $B/test_gdn > /tmp/h_t.txt 2>&1; echo "test_gdn rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | tail -3
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_GDN_WY_OVERLAP=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "OVERLAP=0 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 300 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_OVERLAP=0 \
  --variant QNEXT_GDN_WY_SEG=8 --variant QNEXT_GDN_WY_SEG=32 --variant - --variant QNEXT_GDN_WY_OVERLAP=0 > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -9
echo "== ovl101: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/ovl101.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
