# .dev/device/lay133.sh — lead (run 133): last neighbours of the new defaults: the split down at 16 subgroups x 64 / 128
# rows, the int8 gate_up at 16 one-row subgroups, alternated with the default. ~120 s.
f_t0=$(date +%s)
{
G=":128,8,1,5,0"
timeout 250 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOEQ_DN=split:512,64,2,1 \
  --variant QNEXT_MOEQ_DN=split:512,128,4,1 --variant QNEXT_MOEQ_DN=split:256,64,4,1 --variant QNEXT_MOEQ_LAYOUT=512,32,1,1,512$G \
  --variant QNEXT_MOEQ_DN=split:256,96,2,1 --variant - --variant QNEXT_MOEQ_DN=split:512,64,2,1 --variant QNEXT_MOEQ_LAYOUT=512,32,1,1,512$G \
  --variant - > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
echo "== lay133: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/lay133.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
