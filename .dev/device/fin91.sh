# .dev/device/fin91.sh — lead (run 91): this session's tree (MoE 256-row layout, matmul_cm_h 256 x 128) against the
# previous binary: kernel checks, logits, prefill alternated, decode, profile. ~400 s.
h_t0=$(date +%s)
{
xz -dc .dev/qnext_old.xz > $B/qnext_old && chmod +x $B/qnext_old
timeout 150 $B/test_qmatmul > /tmp/h_q.txt 2>&1; echo "test_qmatmul rc=$?"; grep -E "FAIL|^PASS" /tmp/h_q.txt | tail -2
timeout 120 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped --cm-only rc=$?"; grep -E "FAIL|^PASS" /tmp/h_t.txt | tail -2
toks=$(seq -s, 1 3500)
timeout 90 $B/qnext_old logits -m $M --tokens $toks --last -o /tmp/lo.npy > /tmp/h_lo.txt 2>&1; echo "old rc=$?"
timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/ln.npy > /tmp/h_ln.txt 2>&1; echo "new rc=$?"
python3 -c "
import numpy as np; a=np.load('/tmp/lo.npy'); b=np.load('/tmp/ln.npy')
print('3500 tokens: logits bit-identical' if np.array_equal(a,b) else '3500 tokens: DIFFER max abs %.3e rel L2 %.3e' % (float(np.abs(a-b).max()), np.linalg.norm(a-b)/np.linalg.norm(a)))"
for bin in qnext qnext_old qnext qnext_old; do
  timeout 100 $B/$bin prefill-ab -m $M --prompts 512,1024,2048,4096 --reps 2 --variant - > /tmp/h_ab_$bin.txt 2>&1
  echo "prefill-ab $bin rc=$?"; sed -n '/^prefill-ab table/,$p' /tmp/h_ab_$bin.txt | sed -n 3p
done
timeout 100 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_dec.txt 2>&1; echo "decode rc=$?"; grep -iE "decode|tok/s" /tmp/h_dec.txt | tail -4
timeout 100 $B/qnext prefill-ab -m $M --prompts 4096 --reps 1 --variant - --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" > /tmp/h_pp.txt 2>&1
echo "profile rc=$?"; grep -vE "^qnext: info" /tmp/h_pp.txt | grep -E "profiled|moe_q|matmul|gdn_chunk|attn_prefill" | head -16
echo "== fin91: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/fin91.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
