# .dev/device/acc82.sh — lead (run 82): the grouped tensor-core MoE's accumulators sized by the spec constants
# (CMC acc[NA NB], CMB b[NB]) instead of fixed arrays of 32 / 4: register statistics, kernel checks, bench at 4096,
# prefill A/B against HEAD's binary. ~300 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 60 $B/bench_pstats moe_q_gu_grouped_cm_h_q4_k:128,32,589824,16,128,2,1,4 moe_q_dn_grouped_cm_h_q4_k:128,32,0,16,128,2,1,4 > /tmp/h_ps.txt 2>&1
echo "pstats rc=$?"; grep -iE "regist|spill|local|shared|stack|:" /tmp/h_ps.txt | head -30
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS|passed" /tmp/h_t.txt | tail -4
QNEXT_BENCH_T=4096 timeout 90 $B/test_moe_qgrouped --bench-cm 5 128,32,128,2,1,4 128,32,64,2,1,2 256,32,64,1,1,2 > /tmp/h_bc.txt 2>&1
echo "bench-cm rc=$?"; grep -E "FAIL|^bench" /tmp/h_bc.txt | head -12
for n in 3500; do
  toks=$(seq -s, 1 $n)
  timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old $n rc=$?"
  timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new $n rc=$?"
  python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('$n tokens: logits bit-identical' if np.array_equal(a,b) else '$n tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
done
for bin in qnext qnext_old qnext; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
echo "== acc82: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/acc82.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
