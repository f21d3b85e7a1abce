# .dev/device/lay89.sh — lead (run 89): 256-row grouped-MoE layouts at TS 1 (128 pairs per subgroup, 16 accumulators)
# and BK 16 double-buffered, kernel bench at T 4096 / 2048 and registers. ~60 s.
h_t0=$(date +%s)
{
timeout 60 $B/bench_pstats moe_q_gu_grouped_cm_h_q4_k:256,32,589824,16,128,1,1,1 moe_q_gu_grouped_cm_h_q4_k:256,16,589824,16,128,2,1,1 > /tmp/h_ps.txt 2>&1; grep pstats /tmp/h_ps.txt | head -4
for T in 4096 2048; do
QNEXT_BENCH_T=$T timeout 120 $B/test_moe_qgrouped --bench-cm 5 256,32,128,1,1,2 256,32,128,1,1,1 256,16,128,2,1,1 256,32,128,1,0,2 > /tmp/h_bc$T.txt 2>&1
echo "bench-cm T=$T rc=$?"; grep -E "FAIL|^bench|rror" /tmp/h_bc$T.txt | head -12
done
echo "== lay89: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/lay89.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
