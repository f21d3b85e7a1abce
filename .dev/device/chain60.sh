# .dev/device/chain60.sh — lead (run 60): the decode chain's out projection -> route link (default on with the chain)
# against the chain without it (QNEXT_MOE_CHAIN_OUT=0) and no chain; greedy ids identical; bench. ~150 s.
c_t0=$(date +%s)
{
timeout 280 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN_OUT=0 \
  --variant QNEXT_MOE_CHAIN=0 --variant - --variant QNEXT_MOE_CHAIN_OUT=0 --variant QNEXT_MOE_CHAIN=0 > /tmp/g_ab.txt 2>&1
echo "rc=$?"; grep -E "rror" /tmp/g_ab.txt | head -5; grep -E "decode .* tokens" /tmp/g_ab.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/g_g1.txt 2>&1; echo "generate rc=$?"
QNEXT_MOE_CHAIN=0 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/g_g0.txt 2>&1
cmp /tmp/g_g1.txt /tmp/g_g0.txt && echo "greedy ids identical (chain with the out projection link vs off)"
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/g_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/g_b.txt
echo "== chain60: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/chain60.txt
cp /tmp/g_*.txt $OUT/ 2>/dev/null
