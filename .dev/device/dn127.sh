# .dev/device/dn127.sh — lead (run 127): the split down with more rows per group (run 126: split:128,32,2,1 232.6 vs
# 223-226 tok/s), rows and rows per lane around it, with the 8-warp gate_up; greedy ids; registers. ~200 s.
f_t0=$(date +%s)
{
timeout 60 $B/bench_pstats moe_q_dnx_q6_k:128,0,0,32,2,1,0,0 moe_q_dnx_q6_k:128,0,0,64,2,1,0,0 moe_q_gu_i8_q4_k:256,589824,0,16,1,1,512,1 2>&1 |
  sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
D=QNEXT_MOEQ_DN=split:128,32,2,1 G=QNEXT_MOEQ_LAYOUT=256,16,1,1,512:128,8,1,5,0
timeout 330 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant $D \
  --variant QNEXT_MOEQ_DN=split:128,64,2,1 --variant QNEXT_MOEQ_DN=split:128,48,2,1 --variant QNEXT_MOEQ_DN=split:128,32,1,1 \
  --variant QNEXT_MOEQ_DN=split:64,16,2,1 --variant QNEXT_MOEQ_DN=split:128,64,4,1 --variant "$D $G" --variant $D \
  --variant - --variant "$D $G" > /tmp/h_d.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_d.txt | head -3; grep -E "decode .* tokens" /tmp/h_d.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
env $D $G timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical ($D $G vs default)"
echo "== dn127: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/dn127.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
