# .dev/device/nhx97.sh — lead (run 97): rmsnorm_hx (the prefill norm writing xn's f16 copy; QNEXT_NORM_HX=0: the
# to_f16 passes as before): its kernel test on the driver, logits bit-identity at 3500 tokens, prefill A/B, a profile.
h_t0=$(date +%s)
{
timeout 60 $B/test_rmsnorm > /tmp/h_t.txt 2>&1; echo "test_rmsnorm rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | tail -2
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_NORM_HX=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "NORM_HX=0 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
timeout 240 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_NORM_HX=0 \
  --variant - --variant QNEXT_NORM_HX=0 --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
grep -E "total|rmsnorm|to_f16_f32|matmul_f32" /tmp/h_ab.txt | head -12
echo "== nhx97: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/nhx97.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
