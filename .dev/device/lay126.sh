# .dev/device/lay126.sh — lead (run 126): on the register-diet defaults (feb442c), the remaining decode kernels' layouts:
# gdn_decode (QNEXT_GDN_FUSE_LAYOUT), the split down (QNEXT_MOEQ_DN=split:...), the int8 gate_up (QNEXT_MOEQ_LAYOUT),
# the route stage (QNEXT_ROUTE_ONE_LAYOUT). ~200 s.
f_t0=$(date +%s)
{
G=":128,8,1,5,0"
timeout 330 $B/qnext prefill-ab -m $M --prompts 16 --decode 128 --reps 1 --variant - \
  --variant QNEXT_GDN_FUSE_LAYOUT=128,16 --variant QNEXT_GDN_FUSE_LAYOUT=128,8 --variant QNEXT_GDN_FUSE_LAYOUT=512,32 \
  --variant QNEXT_GDN_FUSE_LAYOUT=256,32 --variant QNEXT_MOEQ_DN=split:256,32,1,1 --variant QNEXT_MOEQ_DN=split:128,32,2,1 \
  --variant QNEXT_MOEQ_DN=split:64,8,1,1 --variant QNEXT_MOEQ_DN=split:256,16,1,1 \
  --variant QNEXT_MOEQ_LAYOUT=128,16,2,1,512$G --variant QNEXT_MOEQ_LAYOUT=256,16,1,1,512$G --variant QNEXT_MOEQ_LAYOUT=64,4,1,1,512$G \
  --variant QNEXT_ROUTE_ONE_LAYOUT=512,16,32,2,1 --variant QNEXT_ROUTE_ONE_LAYOUT=1024,16,32,2,1 --variant - > /tmp/h_l.txt 2>&1
echo "ab rc=$?"; grep -E "rror|arning" /tmp/h_l.txt | head -3; grep -E "decode .* tokens" /tmp/h_l.txt
echo "== lay126: $(( $(date +%s) - f_t0 )) s"
} 2>&1 | tee -a $OUT/lay126.txt
cp /tmp/h_*.txt $OUT/ 2>/dev/null
