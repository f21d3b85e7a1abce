# .dev/device/chain56.sh — lead (run 56): the decode MoE chain (route -> gate_up -> split down without barriers; the
# waits in memory): test_moe_q's chain cases on the driver (where the waits really wait), greedy tokens with the chain
# on and off (must be identical), decode A/B. ~150 s.
c_t0=$(date +%s)
{
echo "#### chain56: test_moe_q (chain cases, validation on)"
QNEXT_VALIDATION=1 timeout 120 $B/test_moe_q --small > /tmp/c_mq.txt 2>&1; echo "rc=$?"; grep -E "chain|FAIL|PASS" /tmp/c_mq.txt | head -20
echo "#### chain56: greedy 48 tokens, chain on / off"
for v in 1 0; do
  QNEXT_MOE_CHAIN=$v timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/c_g$v.txt 2>/tmp/c_ge$v.txt; echo "chain=$v rc=$?"
done
cmp /tmp/c_g1.txt /tmp/c_g0.txt && echo "greedy ids identical: $(cat /tmp/c_g1.txt | head -c 200)"
echo "#### chain56: decode A/B (prefill-ab --prompts 16 --decode 128)"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN=0 \
  --variant - --variant QNEXT_MOE_CHAIN=0 --variant - > /tmp/c_ab.txt 2>&1
echo "rc=$?"; grep -E "rror" /tmp/c_ab.txt | head -5; grep -E "decode .* tokens" /tmp/c_ab.txt
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/c_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/c_b.txt
echo "== chain56: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/chain56.txt
cp /tmp/c_*.txt $OUT/ 2>/dev/null
