# .dev/device/lib_logits_ab.sh — sourced by fragments: logits_ab VAR NTOK [--last] runs `qnext logits` on tokens 1..NTOK
# with VAR=0 and VAR=1 and prints their relative L2 distance, argmax agreement and whether they are bit-identical.
logits_ab() {
  local var=$1 n=$2 last=$3 toks; toks=$(seq -s, 1 "$n")
  for v in 0 1; do env "$var=$v" timeout 90 $B/qnext logits -m $M --tokens $toks $last -o /tmp/lg$v.npy > /tmp/h_l$v.txt 2>&1
    echo "logits $var=$v rc=$?"; done
  python3 - <<'PY'
import numpy as np
a, b = np.load("/tmp/lg0.npy"), np.load("/tmp/lg1.npy")
print("logits", a.shape, "rel L2 on vs off %.3e" % (np.linalg.norm(a - b) / np.linalg.norm(a)),
      "argmax equal %d / %d" % ((a.argmax(-1) == b.argmax(-1)).sum(), a.reshape(-1, a.shape[-1]).shape[0]),
      "bit-identical", bool((a == b).all()))
PY
}
