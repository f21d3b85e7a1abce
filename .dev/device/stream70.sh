# .dev/device/stream70.sh — lead (run 70): streaming at 4 GiB with the f16 path on / off, alternated (run 69's 18.9 tok/s
# against run 61's 24.5: machine or tree?). ~150 s.
f_t0=$(date +%s)
{
for v in 1 0 1 0; do
  QNEXT_MM_H=$v timeout 70 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/h_s$v.txt 2>&1
  echo "stream 4G MM_H=$v rc=$? $(grep -E '^best' /tmp/h_s$v.txt | sed 's/.*decode/decode/')"; grep -E "decode hit rate" /tmp/h_s$v.txt | head -1
done
echo "== stream70: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/stream70.txt
