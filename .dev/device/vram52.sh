# .dev/device/vram52.sh — lead (run 52): an 8 GiB and a 6 GiB GPU's footprint on the H100 (QNEXT_VRAM_BUDGET), no
# --expert-cache (the default cache fills what the budget leaves): the old dense layout (QNEXT_GGUF_F32_FUSED=1;
# the embedding stays in blocks) against the new. ~150 s.
{
for b in 8G 6G; do for v in 1 ""; do
  QNEXT_VRAM_BUDGET=$b QNEXT_GGUF_F32_FUSED=$v timeout 80 $B/qnext bench -m $M --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 > /tmp/v_$b$v.txt 2>&1
  echo "budget $b f32fused=${v:-0} rc=$? $(grep -E '^best' /tmp/v_$b$v.txt)"
  grep -E "^model|^device memory|decode hit rate" /tmp/v_$b$v.txt | sed 's/^/    /'
  grep -E "rror" /tmp/v_$b$v.txt | head -2
done; done
} 2>&1 | tee -a $OUT/vram52.txt
cp /tmp/v_*.txt $OUT/ 2>/dev/null
