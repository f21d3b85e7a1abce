# .dev/device/fin114.sh — lead (run 114): this session's tree (32c042e) against b4e84ea: kernel checks, logits, prefill
# alternated, decode. ~330 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_qmatmul > /tmp/h_tq.txt 2>&1; echo "test_qmatmul rc=$?: $(tail -1 /tmp/h_tq.txt)"
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?: $(tail -1 /tmp/h_t.txt)"
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old rc=$?"
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e, rel L2 %.3e, argmax %d / %d' % (float(np.abs(a-b).max()), float(np.linalg.norm(a-b)/np.linalg.norm(a)), int(a.argmax()), int(b.argmax())))"
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
timeout 100 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_dec.txt 2>&1; echo "decode rc=$?"; grep -E "best|device memory" /tmp/h_dec.txt
echo "== fin114: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fin114.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
