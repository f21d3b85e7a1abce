# .dev/device/dnw120.sh — lead (run 120): the decode down as one group per row block (moe_q_dnw, QNEXT_MOEQ_DN=whole):
# kernel tests on the driver, registers, the kernel bench, the model A/B and the greedy ids against the split.
h_t0=$(date +%s)
{
timeout 150 $B/test_moe_q > /tmp/h_t.txt 2>&1; echo "test_moe_q rc=$?: $(tail -1 /tmp/h_t.txt)"; grep -E "^FAIL|note chain words" /tmp/h_t.txt | head
grep -E "dnw.*K 10|chain.*dnw" /tmp/h_t.txt | cut -c1-150 | head -8
timeout 60 $B/bench_pstats moe_q_dnw_q4_k:352,0,0,16,8,1,0,0 moe_q_dnw_q6_k:352,0,0,16,8,1,0,0 moe_q_dnw_q6_k:704,0,0,16,4,1,0,0 \
  moe_q_dnw_q6_k:352,0,0,8,4,1,0,0 moe_q_dnw_q6_k:704,0,0,32,8,1,0,0 2>&1 | sed 's/Binary Size=[0-9]* Stack Size=0 Local Memory Size=68719476736 //'
timeout 100 $B/test_moe_q --bench --quick --layers 8 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "i8 gate_up|per layer" /tmp/h_b.txt
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant QNEXT_MOEQ_DN=whole \
  --variant QNEXT_MOEQ_DN=whole:704,16,4,1 --variant QNEXT_MOEQ_DN=whole:352,8,4,1 --variant "QNEXT_MOEQ_DN=whole QNEXT_MOE_CHAIN=0" \
  --variant QNEXT_MOE_CHAIN=0 --variant QNEXT_MOEQ_DN=whole --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror" /tmp/h_ab.txt | head -5; grep -E "decode .* tokens" /tmp/h_ab.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
QNEXT_MOEQ_DN=whole timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical (whole vs split)"; tail -2 /tmp/h_g1.txt | cut -c1-200
echo "== dnw120: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/dnw120.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
