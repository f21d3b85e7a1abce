# .dev/device/lay86.sh — lead (run 86): grouped tensor-core MoE layouts with more weight rows per workgroup (x tile
# reused by 256 rows: WG 256 at NBUF 1 or BK 16), kernel bench at T 4096 / 2048, registers. ~120 s.
h_t0=$(date +%s)
{
timeout 60 $B/bench_pstats moe_q_gu_grouped_cm_h_q4_k:256,32,589824,16,128,1,1,2 moe_q_gu_grouped_cm_h_q4_k:256,16,589824,16,128,2,1,2 moe_q_gu_grouped_cm_h_q4_k:256,32,589824,16,96,1,1,2 > /tmp/h_ps.txt 2>&1; grep pstats /tmp/h_ps.txt | head -4
for T in 4096 2048; do
QNEXT_BENCH_T=$T timeout 120 $B/test_moe_qgrouped --bench-cm 5 128,32,128,2,1,4 256,32,128,1,1,2 256,16,128,2,1,2 256,32,96,1,1,2 256,32,64,1,1,2 128,16,128,2,1,4 > /tmp/h_bc$T.txt 2>&1
echo "bench-cm T=$T rc=$?"; grep -E "FAIL|^bench|rror" /tmp/h_bc$T.txt | head -12
done
echo "== lay86: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/lay86.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
