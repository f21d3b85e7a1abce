#!/usr/bin/env bash
# .dev/h100_run.sh FRAG... — on the device machine, from the repo root (carry .gl .dev/bin.tar.xz .dev/device
# .dev/h100_run.sh). Unpacks the loader, the binaries into $B, writes the full 80B Q4_K_M to $M unless a warm machine
# still has it, reads it into the page cache, then sources .dev/device/FRAG.sh for each FRAG while the call has at
# least FRAG_CAP (default 110) s left of its BUDGET (default 585) s. Results under $OUT (one .txt per fragment).
T0=$(date +%s)
for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig
export LD_LIBRARY_PATH=$PWD/.gl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
[ -f /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ] &&
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
export B=/tmp/qb M=/tmp/q.gguf
mkdir -p $B && tar -xJf .dev/bin.tar.xz -C $B
[ -f .dev/probe.tar.xz ] && tar -xJf .dev/probe.tar.xz -C $B
{ echo "#### machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
  $B/qnext devices 2>&1 | head -4; } | tee -a $OUT/machine.txt
if [ -n "${NO_MODEL:-}" ]; then echo "no model (NO_MODEL)" | tee -a $OUT/machine.txt
elif [ ! -s $M ]; then
  s=$(date +%s); $B/qnext synth -o $M --type q4_k_m --no-sync --no-progress > /tmp/synth.txt 2>&1
  echo "synth rc=$? in $(( $(date +%s) - s )) s: $(tail -1 /tmp/synth.txt)" | tee -a $OUT/machine.txt
else echo "model already at $M" | tee -a $OUT/machine.txt; fi
[ -n "${NO_MODEL:-}" ] || { s=$(date +%s); cat $M > /dev/null; echo "page cache warm in $(( $(date +%s) - s )) s" | tee -a $OUT/machine.txt; }
for frag in "$@"; do
  left=$(( ${BUDGET:-585} - ($(date +%s) - T0) ))
  if [ $left -lt ${FRAG_CAP:-110} ]; then echo "== $frag skipped: $left s left" | tee -a $OUT/machine.txt; continue; fi
  echo "======== $frag (at $(( $(date +%s) - T0 )) s)"
  . .dev/device/$frag.sh
done
echo "== call: $(( $(date +%s) - T0 )) s" | tee -a $OUT/machine.txt
