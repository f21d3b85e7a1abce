# .dev/device/ts110.sh — lead (run 110): the grouped tensor-core MoE's token splits interleaved (subgroup split ts
# takes pair fragments a TS + ts instead of the block [ts BT / TS, ..)): kernel checks, bench, logits against the old
# binary, prefill A/B alternated; the delta rule's 64-chunk segments on top. ~400 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS|passed" /tmp/h_t.txt | tail -4
for T in 4096 3072; do
QNEXT_BENCH_T=$T timeout 90 $B/test_moe_qgrouped --bench-cm 5 256,32,128,1,1,2 128,32,128,2,1,4 > /tmp/h_bc$T.txt 2>&1
echo "bench-cm T $T rc=$?"; grep -E "FAIL|WRONG|^bench" /tmp/h_bc$T.txt | head -8
done
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old rc=$?"
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e' % float(np.abs(a-b).max()))"
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 1024,2048,3072,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 2,3p
done
timeout 100 $B/qnext prefill-ab -m $M --prompts 2048,4096 --reps 2 --variant - --variant QNEXT_GDN_WY_SEG=64 > /tmp/h_seg.txt 2>&1
echo "prefill-ab seg rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_seg.txt | head -5
echo "== ts110: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/ts110.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
