# .dev/device/ctx42.sh — lead (run 42): decode at longer contexts, best of 2 reps (after 16 / 1024 / 4096 prompt tokens).
x_t0=$(date +%s)
{
for p in 16 1024 4096; do
  timeout 60 $B/qnext bench -m $M --prompt $p --decode 64 --reps 2 > /tmp/x_$p.txt 2>&1
  echo "prompt $p: rc=$? $(grep -E '^best' /tmp/x_$p.txt)"
  cat /tmp/x_$p.txt >> $OUT/ctx42_full.txt
done
echo "== ctx42: $(( $(date +%s) - x_t0 )) s"
} 2>&1 | tee -a $OUT/ctx42.txt
