# .dev/device/mmh64.sh — lead (run 64): the f16 path of prefill projections (to_f16 + matmul_cm_h; QNEXT_MM_H) in the
# model: kernel tests on the driver, prefill A/B (off / default 256 / min 128 / min 1024), logits on vs off. ~250 s.
h_t0=$(date +%s)
{
# (test_qmatmul ran in runs 63-64)
timeout 200 $B/qnext prefill-ab -m $M --prompts 512,1024,4096 --reps 2 --variant - --variant QNEXT_MM_H=0 \
  --variant QNEXT_MM_H_MIN_T=128 --variant QNEXT_MM_H_MIN_T=1024 \
  --variant "PROFILE=4096 QNEXT_PROFILE_DISPATCH=1" --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -30
grep -E "^  [a-z_0-9]+ " /tmp/h_ab.txt | sort -k3 -g -r | head -16
. .dev/device/lib_logits_ab.sh; logits_ab QNEXT_MM_H 700
echo "== mmh64: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/mmh64.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
