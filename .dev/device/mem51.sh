# .dev/device/mem51.sh — lead (run 51): device memory in use (bench's new line) resident and streaming at
# 2 / 4 / 5.5 GiB, and the host tier without a cache. ~120 s.
{
timeout 60 $B/qnext bench -m $M --prompt 16 --decode 32 --reps 1 > /tmp/m_r.txt 2>&1
echo "resident rc=$? $(grep -E '^device memory' /tmp/m_r.txt)"; grep -E "^best" /tmp/m_r.txt
for c in 2G 4G 5632M; do
  timeout 70 $B/qnext bench -m $M --expert-cache $c --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 > /tmp/m_s$c.txt 2>&1
  echo "stream $c rc=$? $(grep -E '^device memory' /tmp/m_s$c.txt)"; grep -E "^best" /tmp/m_s$c.txt
done
timeout 120 $B/qnext bench -m $M --experts host --prompt 16 --decode 32 --reps 2 > /tmp/m_h.txt 2>&1
echo "host tier rc=$? $(grep -E '^device memory' /tmp/m_h.txt)"; grep -E "^best" /tmp/m_h.txt
} 2>&1 | tee -a $OUT/mem51.txt
cp /tmp/m_*.txt $OUT/ 2>/dev/null
