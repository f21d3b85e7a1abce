# .dev/device/moexh67.sh — lead (run 67): the grouped down reading act in f16 too (QNEXT_MOE_XH=1: gate_up's x only):
# twin checks on the driver, prefill A/B, logits on vs off. ~250 s.
h_t0=$(date +%s)
{
timeout 100 $B/test_moe_qgrouped --cm-only > /tmp/h_t.txt 2>&1; echo "test_moe_qgrouped rc=$?"; grep -E "FAIL|^PASS|in f16" /tmp/h_t.txt | grep -E "FAIL|PASS|Q4_K|Q6_K" | head -12
timeout 200 $B/qnext prefill-ab -m $M --prompts 1024,2048,4096 --reps 2 --variant - --variant QNEXT_MOE_XH=1 \
  --variant QNEXT_MOE_XH=0 --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -7
sed -n '/GPU ms per token/,/prefill-ab \[/p' /tmp/h_ab.txt | sort -k4 -g -r | head -10
toks=$(seq -s, 1 3500)
for v in 0 1; do QNEXT_MM_H=$v timeout 90 $B/qnext logits -m $M --tokens $toks --last -o /tmp/lg$v.npy > /tmp/h_l$v.txt 2>&1; echo "logits MM_H=$v rc=$?"; done
python3 - <<'PY'
import numpy as np
a, b = np.load("/tmp/lg0.npy"), np.load("/tmp/lg1.npy")
print("logits", a.shape, "rel L2 on vs off %.3e" % (np.linalg.norm(a - b) / np.linalg.norm(a)),
      "argmax equal %d / %d" % ((a.argmax(-1) == b.argmax(-1)).sum(), a.reshape(-1, a.shape[-1]).shape[0]),
      "bit-identical", bool((a == b).all()))
PY
echo "== moexh67: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/moexh67.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
