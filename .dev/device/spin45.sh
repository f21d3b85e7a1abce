# .dev/device/spin45.sh — lead (for the next session's first call): the sleep-then-poll wait (a timed fence wait until
# 0.3 ms before the last run's time, then polling) against the blocking wait (QNEXT_WAIT_SPIN_US=0): resident decode
# (run 44 measured pure polling: 206-207 vs 204 tok/s), the host tier (27 ms steps) and streaming at 4 GiB (its
# segments block by default; 20000 forces the poll there). ~200 s.
{
echo "#### spin45: bench --prompt 16 --decode 128 --reps 3, QNEXT_WAIT_SPIN_US 0 / default, alternated x2"
for r in 1 2; do for sp in 0 ""; do
  QNEXT_WAIT_SPIN_US=$sp timeout 40 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 3 > /tmp/s5_$r$sp.txt 2>&1
  echo "spin=${sp:-default} round $r rc=$? $(grep -E '^best' /tmp/s5_$r$sp.txt)"
done; done
echo "#### spin45: host tier (--experts host), 0 / default"
for sp in 0 ""; do
  QNEXT_WAIT_SPIN_US=$sp timeout 120 $B/qnext bench -m $M --experts host --prompt 16 --decode 64 --reps 2 > /tmp/s5_h$sp.txt 2>&1
  echo "spin=${sp:-default} rc=$? $(grep -E '^best' /tmp/s5_h$sp.txt)"
done
echo "#### spin45: streaming 4G buffered, default (segments block) / 20000"
for sp in "" 20000; do
  QNEXT_WAIT_SPIN_US=$sp timeout 60 $B/qnext bench -m $M --expert-cache 4G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 > /tmp/s5_s$sp.txt 2>&1
  echo "spin=${sp:-default} rc=$? $(grep -E '^best' /tmp/s5_s$sp.txt)"
done
cat /tmp/s5_*.txt > $OUT/spin45_full.txt
} 2>&1 | tee -a $OUT/spin45.txt
