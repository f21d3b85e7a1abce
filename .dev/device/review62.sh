# .dev/device/review62.sh — lead (run 62): the review's refactor of the chain kernels (row starts helper, the gate_up
# main from moe_chain.glsl; no intended change): test_moe_q on the driver, greedy ids chain on / off, decode A/B. ~120 s.
r_t0=$(date +%s)
{
QNEXT_VALIDATION=1 timeout 120 $B/test_moe_q --small > /tmp/r_mq.txt 2>&1; echo "test_moe_q rc=$?"; grep -E "FAIL|PASS" /tmp/r_mq.txt | tail -3
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/r_g1.txt 2>&1; echo "generate rc=$?"
QNEXT_MOE_CHAIN=0 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/r_g0.txt 2>&1
cmp /tmp/r_g1.txt /tmp/r_g0.txt && echo "greedy ids identical (chain on vs off): $(head -c 60 /tmp/r_g1.txt)"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN=0 \
  --variant - --variant QNEXT_MOE_CHAIN=0 > /tmp/r_ab.txt 2>&1; echo "rc=$?"; grep -E "decode .* tokens" /tmp/r_ab.txt
echo "== review62: $(( $(date +%s) - r_t0 )) s"
} 2>&1 | tee -a $OUT/review62.txt
cp /tmp/r_*.txt $OUT/ 2>/dev/null
