# .dev/device/wy75.sh — lead (run 75): gdn_chunk_wy_inv with T in place of L and Y = B (T R) (no P = B T phase):
# test_gdn on the driver (CB 64 / 32 / 16), pass 1 alone, logits against run 74's binary, prefill alternated. ~350 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 120 $B/test_gdn > /tmp/h_g.txt 2>&1; echo "test_gdn rc=$?"; grep -E "FAIL|^PASS" /tmp/h_g.txt | tail -3
grep -E "gdn_chunk_wy_inv\((32|64)\).*T=(63|200|300)" /tmp/h_g.txt | head -4
timeout 60 $B/test_gdn --bench-wy 4096 > /tmp/h_w.txt 2>&1; echo "bench-wy rc=$?"; grep -E "^bench" /tmp/h_w.txt | head -3
for n in 700 3500; do
  last=; [ $n = 3500 ] && last=--last
  toks=$(seq -s, 1 $n)
  timeout 90 $B/qnext_old logits -m $M --tokens $toks $last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old $n rc=$?"
  timeout 90 $B/qnext logits -m $M --tokens $toks $last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new $n rc=$?"
  python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy'); a=a.reshape(-1,a.shape[-1]); b=b.reshape(-1,b.shape[-1])
print('$n tokens', a.shape, 'rel L2 %.3e' % (np.linalg.norm(a-b)/np.linalg.norm(a)), 'argmax equal %d / %d' % ((a.argmax(-1)==b.argmax(-1)).sum(), a.shape[0]), 'max abs %.3e' % float(np.abs(a-b).max()))"
done
for bin in qnext qnext_old qnext; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
echo "== wy75: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/wy75.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
