# .dev/device/rev109.sh — lead (run 109): the review's helpers (qn_mm_tiles, qn_matmul_tile_ok) on the driver: matmul
# tests, the tensor-core self-checks at setup, prefill unchanged.
h_t0=$(date +%s)
{
timeout 60 $B/test_matmul > /tmp/h_tm.txt 2>&1; echo "test_matmul rc=$?: $(tail -1 /tmp/h_tm.txt)"
timeout 90 $B/test_qmatmul > /tmp/h_tq.txt 2>&1; echo "test_qmatmul rc=$?: $(tail -1 /tmp/h_tq.txt)"
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn|self-check" /tmp/h_ab.txt | sort | uniq -c | head -8; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -5
echo "== rev109: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/rev109.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
