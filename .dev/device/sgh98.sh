# .dev/device/sgh98.sh — lead (run 98): rmsnorm_hx with coalesced vec4 moves; the shared_expert_gate row on the f16
# path (QNEXT_SG_H=0: matmul_f32 as before). Logits: NORM_HX bit-identity, SG_H's difference; prefill A/B; profile.
h_t0=$(date +%s)
{
timeout 60 $B/test_rmsnorm > /tmp/h_t.txt 2>&1; echo "test_rmsnorm rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | tail -2
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "default rc=$?"
QNEXT_NORM_HX=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "NORM_HX=0 rc=$?"
QNEXT_SG_H=0 timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ls.npy > /tmp/h_ls.txt 2>&1; echo "SG_H=0 rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy'); c=np.load('/tmp/ls.npy')
print('NORM_HX=0: logits bit-identical' if np.array_equal(a,b) else 'NORM_HX=0: DIFFER max abs %.3e' % float(np.abs(a-b).max()))
print('SG_H=0 vs default: max abs %.3e, rel L2 %.3e, argmax %d vs %d' % (float(np.abs(a-c).max()), float(np.linalg.norm(a-c)/np.linalg.norm(c)), int(a.argmax()), int(c.argmax())))"
timeout 260 $B/qnext prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - --variant QNEXT_NORM_HX=0 \
  --variant QNEXT_SG_H=0 --variant "QNEXT_NORM_HX=0 QNEXT_SG_H=0" --variant - --variant "QNEXT_NORM_HX=0 QNEXT_SG_H=0" \
  --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -10
grep -E "total|rmsnorm|to_f16_f32|matmul_f32|matmul_cm_h" /tmp/h_ab.txt | head -14
echo "== sgh98: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/sgh98.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
