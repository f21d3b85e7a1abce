# .dev/device/bk113.sh — lead (run 113): matmul_cm_h layouts with BK 64 / 48 (the large prefill projection tile):
# test_qmatmul checks (every layout at odd shapes), the kernel bench, prefill A/B in the model. ~300 s.
h_t0=$(date +%s)
{
timeout 120 $B/test_qmatmul > /tmp/h_tq.txt 2>&1; echo "test_qmatmul rc=$?: $(tail -1 /tmp/h_tq.txt)"; grep -E "^FAIL" /tmp/h_tq.txt | head -5
timeout 150 $B/test_qmatmul --bench 3 > /tmp/h_tqb.txt 2>&1; echo "bench rc=$?"; grep -E "matmul_cm_h" /tmp/h_tqb.txt | grep -E "M4096|M2048|M512 +N12352" | head -40
L="QNEXT_MM_H_LAYOUT"
timeout 260 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant $L=256,128,128,64,64,32,1 \
  --variant $L=256,128,128,64,32,64,1 --variant $L=384,128,192,48,64,32,1 --variant $L=128,128,128,64,64,64,1 \
  --variant $L=256,128,128,64,64,32,1 --variant - > /tmp/h_v.txt 2>&1
echo "prefill-ab variants rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -10
echo "== bk113: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/bk113.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
