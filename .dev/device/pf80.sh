# .dev/device/pf80.sh — lead (run 80): the grouped tensor-core MoE with its loads two k-steps ahead (PSW 3) against
# the default (PSW 1): kernel checks, bench at 4096 / 2048, logits bit for bit, prefill A/B. ~300 s.
h_t0=$(date +%s)
{
for l in 128,32,128,2,3,4 128,32,128,2,2,4; do
  QNEXT_CM_MOE_TILE=$l timeout 90 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped $l rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -4
done
for T in 4096 2048; do
  QNEXT_BENCH_T=$T timeout 90 $B/test_moe_qgrouped --bench-cm 5 128,32,128,2,1,4 128,32,128,2,3,4 128,32,128,2,1,2 128,32,128,2,3,2 > /tmp/h_bc$T.txt 2>&1
  echo "bench-cm T=$T rc=$?"; grep -E "FAIL|WRONG|^bench" /tmp/h_bc$T.txt | head -8
done
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/la.npy > /tmp/h_la.txt 2>&1; echo "logits default rc=$?"
QNEXT_CM_MOE_TILE=128,32,128,2,3,4 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lb.npy > /tmp/h_lb.txt 2>&1; echo "logits PSW 3 rc=$?"
python3 -c "import numpy as np; a=np.load('/tmp/la.npy'); b=np.load('/tmp/lb.npy'); print('3500 tokens, last row: PSW 3 vs default bit-identical', bool((a==b).all()), 'max abs', float(np.abs(a-b).max()))"
timeout 200 $B/qnext prefill-ab -m $M --prompts 3072,4096 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE=128,32,128,2,3,4 \
  --variant - --variant QNEXT_CM_MOE_TILE=128,32,128,2,3,4 > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -3; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
echo "== pf80: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/pf80.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
