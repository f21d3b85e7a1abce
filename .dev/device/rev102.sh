# .dev/device/rev102.sh — lead (run 102): the review's refactor (mm_tiles, mm_tile_ok): logits at 3500 tokens against
# 67dbc1a's binary (every change since is meant to be bit-identical), prefill at 1024 / 4096.
h_t0=$(date +%s)
{
mkdir -p /tmp/old && xz -dc .dev/qnext_old.xz > /tmp/old/qnext && chmod +x /tmp/old/qnext
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "new rc=$?"
timeout 90 /tmp/old/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "67dbc1a rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical to 67dbc1a' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 150 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -5
echo "== rev102: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/rev102.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
