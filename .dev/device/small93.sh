# .dev/device/small93.sh — lead (run 93): the small-call grouped-MoE layout at 512-1536 tokens (10-30 pairs per
# expert): kernel bench of 256-row layouts with fewer pairs per pass. ~60 s.
h_t0=$(date +%s)
{
for T in 512 1024 1536; do
QNEXT_BENCH_T=$T timeout 100 $B/test_moe_qgrouped --bench-cm 5 256,32,64,1,1,2 256,32,32,1,1,2 256,32,32,1,1,1 256,32,64,1,1,1 256,32,128,1,1,2 128,32,64,1,1,4 > /tmp/h_bc$T.txt 2>&1
echo "bench-cm T=$T rc=$?"; grep -E "FAIL|^bench|rror" /tmp/h_bc$T.txt | head -12
done
echo "== small93: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/small93.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
