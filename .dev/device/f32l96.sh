# .dev/device/f32l96.sh — lead (run 96): matmul_f32 with the unrollable epilogue (TN 8 tiles), and the router's large
# tile in the model (QNEXT_MM_F32_TILE_LARGE; =0 the old single tile); logits bit-identity at 3500 tokens.
h_t0=$(date +%s)
{
timeout 120 $B/test_matmul --bench 5 64,32,32,32,4,4,1 128,64,64,16,8,4,1 256,128,128,16,8,8,1 256,128,128,8,8,8,1 \
  128,128,64,16,8,8,1 256,128,128,16,8,8,0 128,64,128,16,8,8,1 256,128,64,16,8,4,1 128,64,64,8,8,4,1 \
  256,128,128,32,8,8,1 64,64,64,16,8,8,1 256,64,256,16,8,8,1 > /tmp/h_mb.txt 2>&1
echo "test_matmul --bench rc=$?"; grep bench /tmp/h_mb.txt | sort -k3,3 -k4,4 -k6,6n | awk '{k=$3" "$4; if (c[k]++ < 5) print}'
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_MM_F32_TILE_LARGE=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "large=0 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_MM_F32_TILE_LARGE=0 \
  --variant QNEXT_MM_F32_TILE_LARGE=256,128,128,16,8,8,1 --variant - --variant QNEXT_MM_F32_TILE_LARGE=0 > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
echo "== f32l96: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/f32l96.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
