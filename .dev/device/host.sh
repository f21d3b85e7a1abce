# .dev/device/host.sh — helper "host" (issue #5: the host-memory expert tier), sourced by the lead's H100 run script.
# Needs $B (qnext, test_host_read), $M (full 80B Q4_K_M gguf, in the page cache), $OUT. About 80-110 s.
# (HOST_PCIE=1: the PCIe read ceiling first, test_host_read --bench; run 21: 50.9 GB/s.) Then --experts host (every
# routed expert in pinned system memory, one submission per token) with the staged fill (run 21's direct fill took
# 65 s): allocation / fill time, prefill 512, decode, --profile; the decode gather (QNEXT_HOST_GATHER=1: a copy
# kernel moves the routed host experts into VRAM staging before each layer's expert kernels) without a cache
# (--expert-cache 1) and with a 4 GiB VRAM cache in front; the 4 GiB cache without the gather.
# Run 22 measured those (32.3 / 35.6 / 37.6 / 32.8 tok/s); run 23's list below: the VRAM cache with LFU.
# Ceiling: expert bytes per decoded token (480 x 1.95 MiB = 0.98 GB) / 50.9 GB/s = ~52 tok/s without VRAM hits.
host_t0=$(date +%s)
{ echo "#### host: memory heaps"; $B/qnext devices 2>&1 | grep -E "memory:|heap"; } >> $OUT/host.txt
if [ -n "$HOST_PCIE" ]; then   # run 21 measured it: 50.9 GB/s (copy kernel), 36.4 (transfer queue)
  timeout 30 $B/test_host_read --bench 1024 --iters 5 > /tmp/host_pcie.txt 2>&1; echo "(exit $?)" >> /tmp/host_pcie.txt
  { echo "#### host: test_host_read --bench 1024"; cat /tmp/host_pcie.txt; } >> $OUT/host.txt
  echo "== host pcie: $(grep -E 'GB/s|^host buffer|FAIL|exit' /tmp/host_pcie.txt | sed -e 's/ *-> //' -e 's/ read from.*//' | tr '\n' '|')" | tee -a $OUT/host.txt
fi
host_run() {   # host_run NAME PROMPT DECODE [--expert-cache SIZE] [--profile] [--expert-policy P] [ENV=VALUE ...]
  local name=$1 p=$2 d=$3 opt=; shift 3
  if [ "$1" = --expert-cache ]; then opt="--expert-cache $2"; shift 2; fi
  if [ "$1" = --profile ]; then opt="$opt --profile"; shift; fi
  if [ "$1" = --expert-policy ]; then opt="$opt --expert-policy $2"; shift 2; fi
  local t=$(date +%s) left=$(( 108 - ($(date +%s) - host_t0) ))
  if [ $left -lt ${host_last:-45} ]; then echo "== host $name: skipped (time: ${left} s left)" | tee -a $OUT/host.txt; return; fi
  echo "#### host $name: $* --experts host $opt --prompt $p --decode $d" >> $OUT/host.txt
  env "$@" timeout $left $B/qnext bench -m $M --experts host $opt --prompt $p --decode $d --reps 2 --stats -v \
    > /tmp/host_run.txt 2>&1 || echo "(exit $?)" >> /tmp/host_run.txt
  host_last=$(( $(date +%s) - t ))
  grep -v "^qnext: info: vulkan" /tmp/host_run.txt >> $OUT/host.txt
  echo "== host $name (${host_last} s): $(grep -E '^best' /tmp/host_run.txt | sed 's/^best: //' | cut -c1-160) | $(grep -oE 'loaded in [0-9.]+ s \([0-9.]+ GB/s\)|[0-9.]+ s to allocate.*to fill it' /tmp/host_run.txt | head -2 | tr '\n' ' ') | $(grep -oE 'VRAM in use [0-9.]+ GiB|memory type [0-9]+: [a-z -]+' /tmp/host_run.txt | head -2 | tr '\n' ' ') $(grep -oE 'served from VRAM [0-9.]+|admitted [0-9]+ experts \([0-9.]+ GiB' /tmp/host_run.txt | tr '\n' ' ')$(grep -E 'exit|error' /tmp/host_run.txt | head -2 | cut -c1-200)" | tee -a $OUT/host.txt
}
# run 23: the VRAM cache's hit rate (run 22: 7.4% at 4 GiB with LRU, admit 64: 85 MB of admission copies a token);
# QNEXT_HOST_GATHER=2: per-layer staging, so admissions are VRAM -> VRAM copies (no second PCIe read): admit all
host_run cache4G_g2_lfu_all 16 64 --expert-cache 4G --expert-policy lfu QNEXT_HOST_GATHER=2 QNEXT_HOST_ADMIT=0
host_run cache4G_g1_lfu 16 64 --expert-cache 4G --expert-policy lfu QNEXT_HOST_GATHER=1
host_run cache4G_g2_lru_all 16 64 --expert-cache 4G QNEXT_HOST_GATHER=2 QNEXT_HOST_ADMIT=0
echo "== host: $(( $(date +%s) - host_t0 )) s" | tee -a $OUT/host.txt
