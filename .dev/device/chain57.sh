# .dev/device/chain57.sh — lead (run 57): the decode MoE chain's links: both (default), gate_up -> down only
# (QNEXT_MOE_CHAIN=2), none (=0), alternated; the dispatch profile with the chain. ~120 s.
c_t0=$(date +%s)
{
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN=2 \
  --variant QNEXT_MOE_CHAIN=0 --variant - --variant QNEXT_MOE_CHAIN=2 --variant QNEXT_MOE_CHAIN=0 > /tmp/e_ab.txt 2>&1
echo "rc=$?"; grep -E "rror" /tmp/e_ab.txt | head -5; grep -E "decode .* tokens" /tmp/e_ab.txt
QNEXT_MOE_CHAIN=2 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/e_g2.txt 2>&1; echo "chain=2 generate rc=$?"
QNEXT_MOE_CHAIN=0 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/e_g0.txt 2>&1
cmp /tmp/e_g2.txt /tmp/e_g0.txt && echo "greedy ids identical (chain 2 vs 0)"
echo "== chain57: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/chain57.txt
cp /tmp/e_*.txt $OUT/ 2>/dev/null
