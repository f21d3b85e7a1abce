# .dev/device/rev102.sh — lead (run 102): the review's refactor (mm_tiles, mm_tile_ok): logits at 3500 tokens with
# the large f32 tile off (same sums: must be bit-identical), prefill at 1024 / 4096 against run 99's.
h_t0=$(date +%s)
{
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "new rc=$?"
QNEXT_MM_F32_TILE_LARGE=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "large=0 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical with the large f32 tile off' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 150 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -5
echo "== rev102: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/rev102.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
