# .dev/device/review73.sh — lead (run 73): the review's mends (one f32 -> f16 packer for every tensor-core kernel and
# to_f16, helpers in forward.c): logits of the old build (120a03c, .dev/qnext_old.xz) vs the new, bit for bit; the
# tensor-core kernel tests on the driver. ~250 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
for n in 700 3500; do
  last=; [ $n = 3500 ] && last=--last
  toks=$(seq -s, 1 $n)
  timeout 90 $B/qnext_old logits -m $M --tokens $toks $last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old $n rc=$?"
  timeout 90 $B/qnext logits -m $M --tokens $toks $last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new $n rc=$?"
  python3 -c "import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy'); print('$n tokens', a.shape, 'old vs new bit-identical', bool((a==b).all()), 'max abs', float(np.abs(a-b).max()))"
done
timeout 150 $B/test_qmatmul > /tmp/h_q.txt 2>&1; echo "test_qmatmul rc=$?"; grep -E "FAIL|^PASS" /tmp/h_q.txt | head -5
timeout 100 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | head -5
timeout 100 $B/test_attn_cm > /tmp/h_a.txt 2>&1; echo "test_attn_cm rc=$?"; grep -E "FAIL|^PASS" /tmp/h_a.txt | head -5
echo "== review73: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/review73.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
