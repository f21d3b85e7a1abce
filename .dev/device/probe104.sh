# .dev/device/probe104.sh — lead (run 104): attn_prefill_fa 8,32,0 at T 4096 with parts skipped (QNEXT_FA_PROBE bits:
# 1 no K/V loads after the first tile, 2 no S, 4 no P V, 8 no softmax, 16 the loads' loop with break), f16 cache.
h_t0=$(date +%s)
{
export QNEXT_BENCH_T=4096
QNEXT_BENCH_LAY=0,1,32,0 timeout 60 $B/test_attn_cm --bench 2>&1 | grep "^bench"
for lay in 1,8,32,0 1,4,32,1 1,8,16,1; do
for p in 0 16 1 2 4 8 6 14 7; do
  echo "probe $p lay $lay: $(QNEXT_BENCH_LAY=$lay QNEXT_FA_PROBE=$p timeout 60 $B/test_attn_cm --bench 2>&1 | grep '^bench' | sed 's/.*fma *[0-9.]* us *[0-9.]* TFLOP.s | //')"
done
echo "f16kv lay $lay: $(QNEXT_BENCH_LAY=$lay QNEXT_FA_F16KV=1 timeout 60 $B/test_attn_cm --bench 2>&1 | grep '^bench' | sed 's/.*fma *[0-9.]* us *[0-9.]* TFLOP.s | //')"
done
echo "== probe104: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/probe104.txt
