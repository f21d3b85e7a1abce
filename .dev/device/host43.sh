# .dev/device/host43.sh — lead (run 43): the host tier on this session's tree (--experts host, gather default),
# no VRAM cache and a 4 GiB LFU cache. ~150 s.
h_t0=$(date +%s)
{
for c in none 4G; do
  o=; [ $c != none ] && o="--expert-cache $c --expert-policy lfu"
  left=$(( 170 - ($(date +%s) - h_t0) )); [ $left -ge 40 ] || break; [ $left -gt 90 ] && left=90
  timeout $left $B/qnext bench -m $M --experts host $o --prompt 16 --decode 64 --reps 2 --stats > /tmp/h_$c.txt 2>&1
  echo "host tier, VRAM cache $c: rc=$? $(grep -E '^best' /tmp/h_$c.txt) | $(grep -oE 'loaded in [0-9.]+ s|served from VRAM [0-9.]+|VRAM in use [0-9.]+ GiB' /tmp/h_$c.txt | tr '\n' ' ')"
  cat /tmp/h_$c.txt >> $OUT/host43_full.txt
done
echo "== host43: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/host43.txt
