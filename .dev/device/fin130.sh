# .dev/device/fin130.sh — lead (run 130): the final tree (a7c2bd3): the decode bench, and two sets per subgroup for the
# gate_up and the out projections (what paid for the down and the norm matvecs). ~200 s.
f_t0=$(date +%s)
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b.txt
G=":128,8,1,5,0"
timeout 250 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOEQ_LAYOUT=256,32,1,1,512$G \
  --variant QNEXT_MOEQ_LAYOUT=128,16,1,1,512$G --variant QNEXT_QMV_LAYOUT=256,32,1,1,1024 --variant QNEXT_MOEQ_DN=split:256,64,2,1 \
  --variant QNEXT_MOEQ_DN=split:128,32,2,1,0 --variant - --variant QNEXT_MOEQ_LAYOUT=256,32,1,1,512$G > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1; tail -1 /tmp/h_g0.txt | cut -c1-120
echo "== fin130: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/fin130.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
