# .dev/device/she112.sh — lead (run 112): the shared expert's grouped down beside the routed gate_up (QN_MOE_SHARED_ONLY /
# QN_MOE_SKIP_SHARED): kernel checks, logits against the old binary (b4e84ea), prefill A/B alternated; a BK 64
# matmul_cm_h layout as a variant. ~330 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS|passed" /tmp/h_t.txt | tail -4; grep -c "ok   down split" /tmp/h_t.txt
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old rc=$?"
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 1024,2048,3072,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
timeout 150 $B/qnext prefill-ab -m $M --prompts 2048,4096 --reps 2 --variant - --variant QNEXT_MOE_SHARED_EARLY=0 \
  --variant QNEXT_MM_H_LAYOUT=256,128,128,64,64,32,1 --variant - > /tmp/h_v.txt 2>&1
echo "prefill-ab variants rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_v.txt | head -7
echo "== she112: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/she112.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
