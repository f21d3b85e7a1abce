# .dev/device/check72.sh — lead (run 72): the final tree's tensor-core kernel tests on the driver (test_qmatmul:
# to_f16, matmul_cm_h in the model's layouts and the others; test_moe_qgrouped --cm-only: the f16-input twins). ~200 s.
h_t0=$(date +%s)
{
timeout 200 $B/test_qmatmul > /tmp/h_q.txt 2>&1; echo "test_qmatmul rc=$?"; grep -E "FAIL|^PASS|spec constants" /tmp/h_q.txt | head -8
grep -c "^ok   matmul_cm_h" /tmp/h_q.txt
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -6
echo "== check72: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/check72.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
