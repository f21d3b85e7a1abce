# .dev/device/small53.sh — lead (run 53): the smallest budgets (QNEXT_VRAM_BUDGET): host tier at 4G, streaming at 4G. ~120 s.
{
QNEXT_VRAM_BUDGET=4G timeout 150 $B/qnext bench -m $M --experts host --prompt 16 --decode 32 --reps 2 > /tmp/s_h4.txt 2>&1
echo "host tier, budget 4G rc=$? $(grep -E '^best' /tmp/s_h4.txt)"; grep -E "^device memory|rror" /tmp/s_h4.txt | head -3
QNEXT_VRAM_BUDGET=4G timeout 80 $B/qnext bench -m $M --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 > /tmp/s_s4.txt 2>&1
echo "streaming, budget 4G rc=$? $(grep -E '^best' /tmp/s_s4.txt)"; grep -E "^model|^device memory|decode hit rate|rror" /tmp/s_s4.txt | head -4
} 2>&1 | tee -a $OUT/small53.txt
cp /tmp/s_*.txt $OUT/ 2>/dev/null
