# .dev/device/f32t95.sh — lead (run 95): matmul_f32 tiles for W_moe's f32 parts (router 512 rows, ba 64, shared gate 1)
# at 4096 / 2048 / 512 tokens; then the model with a few of them (QNEXT_MM_F32_TILE) and this tree's small MoE layout.
h_t0=$(date +%s)
{
timeout 150 $B/test_matmul --bench 5 64,32,32,32,4,4,1 64,32,32,32,4,4,0 256,64,64,32,4,4,1 256,64,64,32,4,4,0 \
  128,64,32,32,4,4,1 128,32,64,32,4,4,1 256,128,128,16,8,8,0 256,128,128,16,8,8,1 256,128,128,8,8,8,0 \
  256,128,64,16,8,4,1 256,128,64,32,8,4,1 128,64,64,16,8,4,1 128,64,64,32,8,4,1 128,64,64,32,4,8,1 256,64,128,16,4,8,1 \
  256,128,128,32,8,8,1 64,64,16,32,4,4,1 32,128,4,32,4,4,1 64,256,4,32,4,4,1 128,128,64,16,8,8,1 > /tmp/h_mb.txt 2>&1
echo "test_matmul --bench rc=$?"; grep bench /tmp/h_mb.txt | sort -k3,3 -k4,4 -k7,7nr | awk '{k=$3" "$4; if (c[k]++ < 5) print}'
timeout 220 $B/qnext prefill-ab -m $M --prompts 1536,2048,4096 --reps 2 --variant - \
  --variant QNEXT_MM_F32_TILE=256,128,64,16,8,4,1 --variant QNEXT_MM_F32_TILE=128,64,64,16,8,4,1 \
  --variant QNEXT_MM_F32_TILE=256,64,64,32,4,4,1 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== f32t95: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/f32t95.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
