# .dev/device/wyc117.sh — lead (run 117): the delta rule's two passes chained (no barrier; pass 2 waits per (chunk,
# head) on pass 1's counts): kernel checks on the driver, logits against 68d0d9d, prefill A/B. ~250 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 150 $B/test_gdn --wy > /tmp/h_tg.txt 2>&1; echo "test_gdn --wy rc=$?: $(tail -1 /tmp/h_tg.txt)"; grep -E "^FAIL" /tmp/h_tg.txt | head -5
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old rc=$?"
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_CHAIN=0 \
  --variant - --variant QNEXT_GDN_WY_CHAIN=0 > /tmp/h_v.txt 2>&1
echo "prefill-ab rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -7
echo "== wyc117: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wyc117.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
