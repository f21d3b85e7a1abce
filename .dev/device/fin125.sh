# .dev/device/fin125.sh — lead (run 125): the leaner decode layouts as defaults (QMVN 256,16,1,1, QMV 256,16,1,2, route
# 512,8,16,4,1, the int8 gate_up at unroll 1): kernel tests on the driver, decode against the old layouts, greedy ids,
# the headline figures. ~300 s.
f_t0=$(date +%s)
{
timeout 100 $B/test_qmatvec_i8 > /tmp/h_t1.txt 2>&1; echo "test_qmatvec_i8 rc=$?: $(tail -1 /tmp/h_t1.txt)"; grep -E "^FAIL" /tmp/h_t1.txt | head -5
timeout 60 $B/test_mv_norm --route-one > /tmp/h_t2.txt 2>&1; echo "test_mv_norm --route-one rc=$?: $(tail -1 /tmp/h_t2.txt)"; grep -E "^FAIL" /tmp/h_t2.txt | head -5
OLD="QNEXT_QMVN_LAYOUT= QNEXT_QMV_LAYOUT= QNEXT_ROUTE_ONE_LAYOUT=512,8,16,8,2 QNEXT_MOEQ_LAYOUT=128,8,1,2,512:128,8,1,5,0"
timeout 200 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - --variant "$OLD" \
  --variant QNEXT_ROUTE_ONE_LAYOUT=512,8,16,2,1 --variant QNEXT_ROUTE_ONE_LAYOUT=512,8,16,8,1 --variant - --variant "$OLD" \
  --variant QNEXT_ROUTE_ONE_LAYOUT=512,8,16,2,1 --variant - > /tmp/h_ab.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_ab.txt | head -3; grep -E "decode .* tokens" /tmp/h_ab.txt
timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g0.txt 2>&1
env $OLD timeout 60 $B/qnext generate -m $M --tokens 1,2,3,4,5,6,7,8 -n 48 > /tmp/h_g1.txt 2>&1
cmp /tmp/h_g0.txt /tmp/h_g1.txt && echo "greedy ids identical (new defaults vs the old layouts)"
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_b.txt 2>&1; echo "bench rc=$?"; grep -E "^best" /tmp/h_b.txt
timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s.txt 2>&1
echo "stream 4G rc=$? $(grep -E '^best' /tmp/h_s.txt)"; grep -E "decode hit rate|IO ceiling" /tmp/h_s.txt | head -2
timeout 60 $B/qnext bench -m $M --experts host --prompt 16 --decode 32 --reps 1 > /tmp/h_h.txt 2>&1; echo "host tier rc=$? $(grep -E '^best' /tmp/h_h.txt)"
echo "== fin125: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/fin125.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
