# .dev/device/asyncq.sh — lead (run 35): slot copies on an async compute queue (QNEXT_TRANSFER_QUEUE=async):
# test_stream bit-identity on the driver (validation on), then the streaming A/B at 4 GiB. ~200 s.
a_t0=$(date +%s)
{
$B/qnext devices 2>&1 | grep -E "queues:"
for v in "QNEXT_STREAM_STAGED=1" "QNEXT_STREAM_HYBRID=1" "-"; do
  e=; [ "$v" != - ] && e=$v
  env QNEXT_VALIDATION=1 QNEXT_TRANSFER_QUEUE=async QNEXT_TEST_STREAM_QUICK=1 $e timeout 60 $B/test_stream tests/data/golden/tiny > /tmp/a_t.txt 2>&1
  echo "test_stream tiny async $v: rc=$? $(grep -c '^ok' /tmp/a_t.txt) ok, $(grep -c 'FAIL' /tmp/a_t.txt) FAIL, $(grep -ci 'validation' /tmp/a_t.txt) validation lines"
  grep -E "FAIL|VUID|rror" /tmp/a_t.txt | head -4; cat /tmp/a_t.txt >> $OUT/asyncq_full.txt
done
for v in - QNEXT_TRANSFER_QUEUE=async "QNEXT_TRANSFER_QUEUE=async QNEXT_STREAM_STAGED=1" \
         "QNEXT_TRANSFER_QUEUE=async QNEXT_TRANSFER_QUEUES=2" "QNEXT_TRANSFER_QUEUE=async QNEXT_STREAM_STAGED=1 QNEXT_TRANSFER_QUEUES=2" -; do
  left=$(( ${ASYNC_CAP:-230} - ($(date +%s) - a_t0) )); [ $left -ge 25 ] || break; [ $left -gt 40 ] && left=40
  e=; [ "$v" != - ] && e=$v
  env $e timeout $left $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats -v > /tmp/a_s.txt 2>&1
  echo "#### 4G [$v] rc=$?"; grep -E "^best|^IO ceiling|^decode per token|copies .* per token|streaming experts:|copies on" /tmp/a_s.txt | cut -c1-260
  cat /tmp/a_s.txt >> $OUT/asyncq_full.txt
done
echo "== asyncq: $(( $(date +%s) - a_t0 )) s"
} 2>&1 | tee -a $OUT/asyncq.txt
