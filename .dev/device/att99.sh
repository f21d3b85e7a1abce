# .dev/device/att99.sh — lead (run 99): this tree (router large tile; small MoE layout) — attention layouts in the
# model (QNEXT_ATTN_CM_LAYOUT), more matmul_f32 tiles for the router rows, decode.
h_t0=$(date +%s)
{
timeout 100 $B/test_matmul --bench 5 128,64,64,16,8,4,1 64,64,32,16,8,4,1 128,128,32,16,8,4,1 128,128,64,16,16,4,1 \
  64,32,64,16,4,4,1 128,64,64,16,8,4,0 256,64,128,16,4,4,1 256,128,32,16,4,4,1 > /tmp/h_mb.txt 2>&1
echo "test_matmul --bench rc=$?"; grep bench /tmp/h_mb.txt | grep "N512" | sort -k3,3 -k6,6n | awk '{k=$3; if (c[k]++ < 4) print}'
timeout 260 $B/qnext prefill-ab -m $M --prompts 1024,4096 --reps 2 --variant - --variant QNEXT_ATTN_CM_LAYOUT=1,32,0 \
  --variant QNEXT_ATTN_CM_LAYOUT=0,32,1 --variant QNEXT_ATTN_CM_LAYOUT=1,16,0 --variant - > /tmp/h_ab.txt 2>&1
echo "prefill-ab rc=$?"; grep -E "rror|warn" /tmp/h_ab.txt | head -5; sed -n '/^prefill-ab table/,$p' /tmp/h_ab.txt | head -8
timeout 100 $B/qnext bench -m $M --prompt 16 --decode 128 --reps 2 > /tmp/h_dec.txt 2>&1
echo "decode rc=$?"; grep -iE "decode|tok/s" /tmp/h_dec.txt | tail -4
echo "== att99: $(( $(date +%s) - h_t0 )) s"
} 2>&1 | tee -a $OUT/att99.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
