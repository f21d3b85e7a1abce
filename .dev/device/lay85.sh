# .dev/device/lay85.sh — lead (run 85): grouped tensor-core MoE layouts with more workgroups per SM (WG 64: 256
# invocations; NBUF 1 TS 2), kernel bench at T 4096 / 2048, registers, prefill A/B. ~300 s.
h_t0=$(date +%s)
{
timeout 60 $B/bench_pstats moe_q_gu_grouped_cm_h_q4_k:64,32,589824,16,128,2,1,4 moe_q_gu_grouped_cm_h_q4_k:64,32,589824,16,128,2,1,2 moe_q_gu_grouped_cm_h_q4_k:128,32,589824,16,128,1,1,2 > /tmp/h_ps.txt 2>&1; grep pstats /tmp/h_ps.txt | head -4
for T in 4096 2048; do
QNEXT_BENCH_T=$T timeout 120 $B/test_moe_qgrouped --bench-cm 5 128,32,128,2,1,4 64,32,128,2,1,4 64,32,128,1,1,4 64,32,128,2,1,2 128,32,128,1,1,2 96,32,128,2,1,4 256,32,64,1,1,2 64,32,64,2,1,4 > /tmp/h_bc$T.txt 2>&1
echo "bench-cm T=$T rc=$?"; grep -E "FAIL|^bench" /tmp/h_bc$T.txt | head -12
done
echo "== lay85: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/lay85.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
