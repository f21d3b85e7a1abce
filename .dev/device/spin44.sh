# .dev/device/spin44.sh — lead (run 44): the host's wait between decode steps. bench decode with the fence polled
# (QNEXT_WAIT_SPIN_US) against the blocking wait, alternated, and the op-family profile's GPU ms per token against
# the wall ms per token. ~150 s.
{
echo "#### spin44: bench --prompt 16 --decode 128 --reps 3, QNEXT_WAIT_SPIN_US unset / 100000, alternated x2"
for r in 1 2; do for sp in "" 100000; do
  QNEXT_WAIT_SPIN_US=$sp timeout 40 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 3 > /tmp/s_$r$sp.txt 2>&1
  echo "spin=${sp:-off} round $r rc=$? $(grep -E '^best' /tmp/s_$r$sp.txt)"
done; done
echo "#### spin44: --profile (op families, no per-dispatch stamps): GPU ms per token vs wall"
for sp in "" 100000; do
  QNEXT_WAIT_SPIN_US=$sp timeout 40 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 --profile > /tmp/s_p$sp.txt 2>&1
  echo "spin=${sp:-off} rc=$? $(grep -E '^best' /tmp/s_p$sp.txt)"; grep -E "^  total|tokens/s of GPU|dispatches per" /tmp/s_p$sp.txt
done
cat /tmp/s_*.txt > $OUT/spin44_full.txt
} 2>&1 | tee -a $OUT/spin44.txt
