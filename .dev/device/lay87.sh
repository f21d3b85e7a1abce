# .dev/device/lay87.sh — lead (run 87): the grouped MoE at 256,32,128,1,1,2 (256 weight rows per workgroup) in the
# model: kernel checks, logits, prefill A/B alternated. ~250 s.
h_t0=$(date +%s)
{
QNEXT_CM_MOE_TILE=256,32,128,1,1,2 timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only (256,32,128,1,1,2) rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -6
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_CM_MOE_TILE=256,32,128,1,1,2 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "256 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e rel L2 %.3e argmax %d %d' % (float(np.abs(a-b).max()), np.linalg.norm(a-b)/np.linalg.norm(a), a.argmax(), b.argmax()))"
timeout 250 $B/qnext prefill-ab -m $M --prompts 2048,3072,4096 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE=256,32,128,1,1,2 \
  --variant - --variant QNEXT_CM_MOE_TILE=256,32,128,1,1,2 --variant "QNEXT_CM_MOE_TILE=256,32,128,1,1,2 QNEXT_CM_MOE_BIG_PAIRS=30" > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== lay87: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/lay87.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
