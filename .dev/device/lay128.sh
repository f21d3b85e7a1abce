# .dev/device/lay128.sh — lead (run 128): the defaults of 5a-run-127 (down 32 rows, gate_up 256,16,1,1) checked, and the
# matvec layouts once more around them. ~200 s.
f_t0=$(date +%s)
{
timeout 100 $B/test_moe_q > /tmp/h_t.txt 2>&1; echo "test_moe_q rc=$?: $(tail -1 /tmp/h_t.txt)"; grep -E "^FAIL" /tmp/h_t.txt | head -3
timeout 100 $B/test_qmatvec_i8 > /tmp/h_t1.txt 2>&1; echo "test_qmatvec_i8 rc=$?: $(tail -1 /tmp/h_t1.txt)"; grep -E "^FAIL" /tmp/h_t1.txt | head -3
N=QNEXT_QMVN_LAYOUT P=QNEXT_QMV_LAYOUT
timeout 330 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - \
  --variant "$N=256,32,1,1,1024" --variant "$N=512,32,1,1,1024" --variant "$N=128,8,1,1,1024" \
  --variant "$N=256,16,1,1,1024;q6_k:256,16,1,2,1024" --variant "$P=256,32,1,2,1024" --variant "$P=128,8,1,2,1024" \
  --variant "$P=256,16,1,1,1024" --variant QNEXT_ROUTE_ONE_LAYOUT=512,8,16,1,1 --variant QNEXT_MOE_CHAIN=0 \
  --variant - > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b.txt
echo "== lay128: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/lay128.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
