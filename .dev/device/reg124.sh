# .dev/device/reg124.sh — lead (run 124): the decode kernels' register diets of run 123 together; greedy ids. ~150 s.
f_t0=$(date +%s)
{
timeout 60 $B/bench_pstats route_mixed_q4_k:512,8,16,2,1,512 route_mixed_q4_k:512,8,8,4,1,512 matvec_norm_i8_q4_k:256,8,1,1,1024,9 2>&1 |
  sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
C1="QNEXT_QMVN_LAYOUT=256,16,1,1,1024 QNEXT_QMV_LAYOUT=256,16,1,2,1024 QNEXT_ROUTE_ONE_LAYOUT=512,8,16,4,1"
G="QNEXT_MOEQ_LAYOUT=128,8,1,1,512:128,8,1,5,0"
timeout 280 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant "$C1" --variant "$C1 $G" \
  --variant "${C1/16,4,1/16,2,1}" --variant "${C1/16,4,1/8,4,1}" --variant "${C1/256,16,1,1/256,8,1,1}" \
  --variant "$C1 $G" --variant "$C1" --variant - > /tmp/h_rg.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_rg.txt | head -3; grep -E "decode .* tokens" /tmp/h_rg.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
env $C1 $G timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical (C1 + G vs default)"
echo "== reg124: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/reg124.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
