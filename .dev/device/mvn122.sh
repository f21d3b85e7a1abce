# .dev/device/mvn122.sh — lead (run 122): the decode norm matvecs (GDN / attention in-projections, lm_head) at one unit
# in flight per lane (run 121: QNEXT_QMVN_LAYOUT=256,16,1,2 216.3 vs 208.2 tok/s): registers, more layouts around it,
# the out projections (QNEXT_QMV_LAYOUT) too, and the greedy ids against the default. ~250 s.
f_t0=$(date +%s)
{
timeout 60 $B/bench_pstats matvec_norm_i8_q4_k:256,16,2,2,1024,9 matvec_norm_i8_q4_k:256,16,1,2,1024,9 \
  matvec_norm_i8_q4_k:256,16,2,1,1024,9 matvec_norm_i8_q4_k:256,16,1,1,1024,9 matvec_norm_i8_q6_k:256,16,1,2,1024,9 \
  matvec_i8_q4_k:256,16,1,2,1024,9 2>&1 | sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
V=QNEXT_QMVN_LAYOUT
timeout 240 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant $V=256,16,1,2,1024 \
  --variant $V=256,16,1,1,1024 --variant $V=128,8,1,2,1024 --variant $V=256,8,1,1,1024 --variant $V=512,32,1,2,1024 \
  --variant "$V=256,16,1,2,1024 QNEXT_QMV_LAYOUT=256,16,1,2,1024" --variant "$V=256,16,1,2,1024 QNEXT_QMV_LAYOUT=128,8,1,2,1024" \
  --variant $V=128,16,1,4,1024 --variant - --variant $V=256,16,1,2,1024 > /tmp/h_mv.txt 2>&1
echo "qmvn ab rc=$?"; grep -E "rror" /tmp/h_mv.txt | head -3; grep -E "decode .* tokens" /tmp/h_mv.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
QNEXT_QMVN_LAYOUT=256,16,1,2,1024 timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical (256,16,1,2 vs default)"
echo "== mvn122: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/mvn122.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
