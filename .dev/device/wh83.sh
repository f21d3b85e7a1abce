# .dev/device/wh83.sh — lead (run 83): the grouped MoE on experts decoded to f16 first (moe_to_f16 + the QN_WH twins):
# kernel checks (bit-identical to the block kernels), logits against HEAD's binary, prefill A/B, profile at 4096. ~400 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS|decoded|moe_to_f16" /tmp/h_t.txt | head -24
timeout 60 $B/bench_pstats moe_q_gu_grouped_cm_hw:128,32,0,16,128,2,1,4 moe_to_f16_gu_q4_k:256,589824 > /tmp/h_ps.txt 2>&1; grep pstats /tmp/h_ps.txt | head -3
for n in 3500; do
  toks=$(seq -s, 1 $n)
  timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old $n rc=$?"
  timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new $n rc=$?"; grep -E "decoded|warn" /tmp/h_ln.txt | head -3
  python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('$n tokens: logits bit-identical' if np.array_equal(a,b) else '$n tokens: DIFFER max abs %.3e rel L2 %.3e' % (float(np.abs(a-b).max()), np.linalg.norm(a-b)/np.linalg.norm(a)))"
done
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_MOE_WH=0 \
  --variant QNEXT_MOE_WH_MIN_T=256 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
timeout 100 $B/qnext prefill-ab -m $M --prompts 4096 --reps 1 --variant - --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_pp.txt 2>&1
echo "profile rc=$?"; grep -vE "^qnext: info" /tmp/h_pp.txt | grep -E "^prefill-ab|total|^  [a-z_0-9]+ " | head -40
echo "== wh83: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wh83.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
