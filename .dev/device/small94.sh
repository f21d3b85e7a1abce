# .dev/device/small94.sh — lead (run 94): the small-call grouped-MoE layout 256,32,32,1,1,1 in the model, with the
# big/small switch at 30 and 60 pairs per expert; logits. ~200 s.
h_t0=$(date +%s)
{
QNEXT_CM_MOE_TILE_SMALL=256,32,32,1,1,1 timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only (small 256,32,32,1,1,1) rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | tail -2
toks=$(seq -s, 1 1000)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_CM_MOE_TILE_SMALL=256,32,32,1,1,1 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "small rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('1000 tokens: logits bit-identical' if np.array_equal(a,b) else '1000 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,1536,2048 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE_SMALL=256,32,32,1,1,1 \
  --variant "QNEXT_CM_MOE_TILE_SMALL=256,32,32,1,1,1 QNEXT_CM_MOE_BIG_PAIRS=60" --variant - --variant QNEXT_CM_MOE_TILE_SMALL=256,32,32,1,1,1 > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== small94: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/small94.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
