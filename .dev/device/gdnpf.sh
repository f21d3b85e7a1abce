# .dev/device/gdnpf.sh — helper "gdnpf" (wave 8: the prefill delta rule), sourced by the lead's H100 script ($B, $M,
# $OUT). ~110 s. The decisive in-model A/B first (baseline at both ends), then the two-pass kernels' tests on the
# NVIDIA driver (gdn_chunk_wy_inv at CB 32 / 64 never ran anywhere: lavapipe's 32 KB of shared memory hold only 16),
# then the kernel bench.
#   QNEXT_GDN_WY_INV=1|16|32|64  pass 1 as products with (I + L)^-1 by blocks (1: widest CB that fits)
#   QNEXT_GDN_WY_OVERLAP=1       segments of half the scratch, pass 1 of k + 1 beside pass 2 of k
#   QNEXT_GDN_WY_LAYOUT=256,32,2 pass 2's loads two stages ahead
g_t0=$(date +%s)
{
echo "#### gdnpf: prefill A/B (prefill-ab --reps 1, tok/s at 128 / 512 / 4096)"
timeout 75 $B/qnext prefill-ab -m $M --prompts 128,512,4096 --reps 1 --decode 0 --variant - \
  --variant QNEXT_GDN_WY_INV=1 --variant QNEXT_GDN_WY_INV=16 --variant QNEXT_GDN_WY_INV=32 \
  --variant QNEXT_GDN_WY_OVERLAP=1 --variant QNEXT_GDN_WY_LAYOUT=256,32,2 \
  --variant "QNEXT_GDN_WY_INV=1 QNEXT_GDN_WY_OVERLAP=1 QNEXT_GDN_WY_LAYOUT=256,32,2" --variant - > /tmp/g_ab.txt 2>&1
echo "prefill-ab rc=$?"
grep -E "error|warning|FAIL" /tmp/g_ab.txt | head -5
sed -n '/^prefill-ab table/,$p' /tmp/g_ab.txt
grep -q "^prefill-ab table" /tmp/g_ab.txt || grep -E "^prefill-ab \[" /tmp/g_ab.txt
echo "#### gdnpf: test_gdn --wy on the device"
timeout 25 $B/test_gdn --wy > /tmp/g_t.txt 2>&1
echo "test_gdn --wy rc=$? $(grep -c '^ok' /tmp/g_t.txt) ok, $(grep -c '^FAIL' /tmp/g_t.txt) FAIL"
grep -E "^FAIL|SKIP|rror" /tmp/g_t.txt | head -8 | cut -c1-220
left=$(( 108 - ($(date +%s) - g_t0) ))
if [ $left -ge 8 ]; then
  echo "#### gdnpf: test_gdn --bench 4096 (ms, warmed)"
  QNEXT_BENCH_WARM_MS=100 timeout $left $B/test_gdn --bench 4096 > /tmp/g_b.txt 2>&1
  echo "bench rc=$?"; grep -E "^bench|FAIL" /tmp/g_b.txt | grep -E "T=4096|T=512|FAIL|best" | head -30 | cut -c1-200
fi
cat /tmp/g_ab.txt /tmp/g_t.txt /tmp/g_b.txt > $OUT/gdnpf_full.txt 2>/dev/null
echo "== gdnpf: $(( $(date +%s) - g_t0 )) s"
} 2>&1 | tee -a $OUT/gdnpf.txt
