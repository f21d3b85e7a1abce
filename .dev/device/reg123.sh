# .dev/device/reg123.sh — lead (run 123): fewer registers per decode kernel (run 122: the norm matvecs at one unit and one
# row per lane, 45 registers, +5.6%): on top of QNEXT_QMVN_LAYOUT=256,16,1,1, the out projections, the split down, the
# routed gate_up and the route stage with fewer units / rows in flight per lane. ~250 s.
f_t0=$(date +%s)
{
timeout 60 $B/bench_pstats matvec_i8_q4_k:256,16,1,1,1024,9 moe_q_dnx_q6_k:128,0,0,16,1,1,0,0 moe_q_dnx_q4_k:128,0,0,16,1,1,0,0 \
  moe_q_gu_i8_q4_k:128,589824,0,8,1,1,512,1 route_mixed_q4_k:512,8,16,4,1,512 route_mixed_q4_k:512,8,16,8,1,512 2>&1 |
  sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
A=QNEXT_QMVN_LAYOUT=256,16,1,1,1024
timeout 280 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant $A \
  --variant "$A QNEXT_QMV_LAYOUT=256,16,1,1,1024" --variant "$A QNEXT_QMV_LAYOUT=256,16,1,2,1024" \
  --variant "$A QNEXT_MOEQ_DN=split:128,16,1,1" --variant "$A QNEXT_MOEQ_DN=split:128,8,1,1" \
  --variant "$A QNEXT_MOEQ_LAYOUT=128,8,1,1,512:128,8,1,5,0" --variant "$A QNEXT_ROUTE_ONE_LAYOUT=512,8,16,4,1" \
  --variant "$A QNEXT_ROUTE_ONE_LAYOUT=512,8,16,8,1" --variant $A --variant - > /tmp/h_rg.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_rg.txt | head -3; grep -E "decode .* tokens" /tmp/h_rg.txt
echo "== reg123: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/reg123.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
