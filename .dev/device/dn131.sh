# .dev/device/dn131.sh — lead (run 131): the split down at 64 rows per group of 8 subgroups (run 130: split:256,64,2,1
# 244.8 vs 237.8-238.2 once): alternated three times, neighbours, registers, greedy ids, bench. ~200 s.
f_t0=$(date +%s)
{
timeout 60 $B/bench_pstats moe_q_dnx_q6_k:256,0,0,64,2,1,0,0 moe_q_dnx_q4_k:256,0,0,64,2,1,0,0 2>&1 |
  sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
D=QNEXT_MOEQ_DN=split:256,64,2,1
timeout 250 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant $D --variant - --variant $D \
  --variant QNEXT_MOEQ_DN=split:256,32,2,1 --variant QNEXT_MOEQ_DN=split:512,128,2,1 --variant QNEXT_MOEQ_DN=split:256,128,2,1 \
  --variant QNEXT_MOEQ_DN=split:256,64,1,1 --variant - --variant $D > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
env $D timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical ($D vs default)"
env $D timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench $D rc=$?"; grep -E "^best" /tmp/h_b.txt
echo "== dn131: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/dn131.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
