# .dev/device/bk115.sh — lead (run 115): the grouped tensor-core MoE at BK 48 / 64 (fewer barriers per multiply):
# checks in the new layouts, kernel bench at T 4096 and 1024, prefill variants. ~300 s.
h_t0=$(date +%s)
{
for lay in 256,48,128,1,1,2 128,64,128,1,1,2; do
  QNEXT_CM_MOE_TILE=$lay timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t_$lay.txt 2>&1; echo "checks $lay rc=$?: $(tail -1 /tmp/h_t_$lay.txt)"
done
QNEXT_BENCH_T=4096 timeout 90 $B/test_moe_qgrouped --bench-cm 5 256,32,128,1,1,2 256,48,128,1,1,2 128,64,128,1,1,2 > /tmp/h_bc4.txt 2>&1
echo "bench-cm 4096 rc=$?"; grep -E "FAIL|WRONG|^bench|skipped" /tmp/h_bc4.txt | head -8
QNEXT_BENCH_T=1024 timeout 90 $B/test_moe_qgrouped --bench-cm 5 256,32,32,1,1,1 256,64,32,1,1,1 256,48,32,1,1,1 > /tmp/h_bc1.txt 2>&1
echo "bench-cm 1024 rc=$?"; grep -E "FAIL|WRONG|^bench|skipped" /tmp/h_bc1.txt | head -8
timeout 250 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_CM_MOE_TILE=256,48,128,1,1,2 \
  --variant QNEXT_CM_MOE_TILE=128,64,128,1,1,2 --variant QNEXT_CM_MOE_TILE_SMALL=256,64,32,1,1,1 \
  --variant QNEXT_CM_MOE_TILE_SMALL=256,48,32,1,1,1 --variant - > /tmp/h_v.txt 2>&1
echo "prefill-ab variants rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -9
echo "== bk115: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/bk115.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
