# .dev/device/f32fuse48.sh — lead (run 48): GGUF mixed-type fusions without their f32 copies (the default now;
# QNEXT_GGUF_F32_FUSED=1 the old layout): dense VRAM, bench's weight bytes per token, decode, prefill at 2-1024
# tokens (2..4 tokens now take the per-part matmuls), and streaming at the same total VRAM (old + 2 GiB cache vs new
# + 5 GiB cache). ~300 s.
f_t0=$(date +%s)
{
echo "#### f32fuse48: bench --prompt 16 --decode 128 --reps 2, new / old layout"
for v in "" 1 ""; do
  QNEXT_GGUF_F32_FUSED=$v timeout 60 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/f_b$v.txt 2>&1
  echo "f32fused=${v:-0} rc=$? $(grep -E '^model' /tmp/f_b$v.txt | grep -oE '[0-9.]+ GiB dense[^;]*')"
  grep -E "^best" /tmp/f_b$v.txt
done
echo "#### f32fuse48: prefill-ab at 2,3,4,16,512,1024"
timeout 200 $B/qnext prefill-ab -m $M --prompts 2,3,4,16,512,1024 --reps 2 --variant - --variant QNEXT_GGUF_F32_FUSED=1 \
  --variant - > /tmp/f_ab.txt 2>&1
echo "rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/f_ab.txt
echo "#### f32fuse48: streaming at ~7.5 GiB of VRAM: old layout + 2G cache, new + 5G"
QNEXT_GGUF_F32_FUSED=1 timeout 70 $B/qnext bench -m $M --expert-cache 2G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/f_s1.txt 2>&1
echo "old 2G rc=$? $(grep -E '^best' /tmp/f_s1.txt)"; grep -E "hit rate|GiB dense" /tmp/f_s1.txt | head -3
timeout 70 $B/qnext bench -m $M --expert-cache 5G --io buffered --prefetch 10 --prompt 16 --decode 32 --reps 2 --stats > /tmp/f_s2.txt 2>&1
echo "new 5G rc=$? $(grep -E '^best' /tmp/f_s2.txt)"; grep -E "hit rate|GiB dense" /tmp/f_s2.txt | head -3
echo "== f32fuse48: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/f32fuse48.txt
cp /tmp/f_*.txt $OUT/ 2>/dev/null
