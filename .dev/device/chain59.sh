# .dev/device/chain59.sh — lead (run 59): the decode MoE chain by link: both (default), route -> gate_up only
# (QNEXT_MOE_CHAIN=3), gate_up -> down only (=2), none (=0); greedy ids with the route link only. ~120 s.
c_t0=$(date +%s)
{
timeout 280 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOE_CHAIN=3 \
  --variant QNEXT_MOE_CHAIN=2 --variant QNEXT_MOE_CHAIN=0 \
  --variant - --variant QNEXT_MOE_CHAIN=3 \
  --variant QNEXT_MOE_CHAIN=2 --variant QNEXT_MOE_CHAIN=0 > /tmp/f_ab.txt 2>&1
echo "rc=$?"; grep -E "rror" /tmp/f_ab.txt | head -5; grep -E "decode .* tokens" /tmp/f_ab.txt
QNEXT_MOE_CHAIN=3 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/f_g1.txt 2>&1; echo "generate rc=$?"
QNEXT_MOE_CHAIN=0 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/f_g0.txt 2>&1
cmp /tmp/f_g1.txt /tmp/f_g0.txt && echo "greedy ids identical (route link only vs chain off)"
echo "== chain59: $(( $(date +%s) - c_t0 )) s"
} 2>&1 | tee -a $OUT/chain59.txt
cp /tmp/f_*.txt $OUT/ 2>/dev/null
