# .dev/device/final39.sh — lead (run 39): this session's tree: test_stream on the driver (the tuned PF_DROP byte
# check), the canonical prefill / decode figures, streaming at 4 GiB. ~200 s.
f_t0=$(date +%s)
{
QNEXT_TEST_STREAM_QUICK=1 timeout 60 $B/test_stream tests/data/golden/tiny > /tmp/f_t.txt 2>&1
echo "test_stream tiny (driver, quick): rc=$? $(grep -c '^ok' /tmp/f_t.txt) ok, $(grep -c 'FAIL' /tmp/f_t.txt) FAIL"; grep FAIL /tmp/f_t.txt | head -3
echo "#### final: prefill-ab --prompts 512,1024,4096 --reps 2 --decode 128"
timeout 100 $B/qnext prefill-ab -m $M --prompts 512,1024,4096 --reps 2 --decode 128 --variant - --variant QNEXT_ROUTER_CM=0 \
  --variant - > /tmp/f_ab.txt 2>&1
echo "rc=$?"; grep -E "decode|rror" /tmp/f_ab.txt; sed -n '/^prefill-ab table/,$p' /tmp/f_ab.txt
echo "#### final: bench --prompt 16 --decode 128 --reps 2"
timeout 40 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/f_d.txt 2>&1; echo "rc=$?"; grep -E "^best" /tmp/f_d.txt
left=$(( 200 - ($(date +%s) - f_t0) )); [ $left -gt 60 ] && left=60
if [ $left -ge 30 ]; then
  echo "#### final: streaming 4G"
  timeout $left $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/f_s.txt 2>&1
  echo "rc=$?"; grep -E "^best|^streaming|^IO ceiling|^host" /tmp/f_s.txt
fi
cat /tmp/f_t.txt /tmp/f_ab.txt /tmp/f_d.txt /tmp/f_s.txt >> $OUT/final_full.txt 2>/dev/null
echo "== final39: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/final39.txt
