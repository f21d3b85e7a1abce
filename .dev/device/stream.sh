# .dev/device/stream.sh — helper "stream" (the default streaming pipeline, cold then warm), sourced by the lead's H100
# script ($B, $M in the page cache, $OUT). Up to STREAM_CAP (default 250) s; put it FIRST in a fresh machine (its
# first bench also pays the cold pipeline compile, stamped so that cost shows).
# Each row: bench --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats.
# (Wave 8's staged-miss variants lost in run 31 and were removed in wave 9: docs/streaming.md.)
s_t0=$(date +%s)
s_run() {   # s_run NAME [ENV=VALUE ...]
  local name=$1; shift
  local left=$(( ${STREAM_CAP:-250} - ($(date +%s) - s_t0) ))
  [ $left -gt 45 ] && left=75
  if [ $left -lt 30 ]; then echo "== stream $name: skipped (${left} s left)" | tee -a $OUT/stream.txt; return; fi
  local t=$EPOCHREALTIME
  echo "#### stream $name: $* (cap $left s)" >> $OUT/stream.txt
  env "$@" timeout $left stdbuf -oL -eL $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 \
    --prompt 16 --decode 32 --reps 2 --stats > /tmp/s_run.txt 2>&1 || echo "(exit $?)" >> /tmp/s_run.txt
  grep -v "^qnext: info: vulkan" /tmp/s_run.txt >> $OUT/stream.txt
  printf '== stream %s (%.1f s): %s | %s %s\n' "$name" "$(echo "$EPOCHREALTIME - $t" | awk '{print $1-$3}')" \
    "$(grep -oE '^best: .*decode [0-9.]+ ms/token = [0-9.]+ tok/s' /tmp/s_run.txt | sed 's/.*decode //')" \
    "$(grep -E '^streaming' /tmp/s_run.txt | head -1 | sed 's/^streaming [^:]*: decode //' | cut -c1-140)" \
    "$(grep -E 'exit|error|warn' /tmp/s_run.txt | head -2 | cut -c1-160)" | tee -a $OUT/stream.txt
}
s_run cold_default
s_run warm_default
echo "== stream: $(( $(date +%s) - s_t0 )) s" | tee -a $OUT/stream.txt
