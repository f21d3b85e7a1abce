#!/usr/bin/env python3
"""Deterministic mixed-language text for tokenizer benchmarks (qnext tokenize --bench, tokenizer_hf.py).

python3 make_bench_text.py OUT [SIZE_MB [SEED]]      (default 10 MB, seed 1)

Paragraphs of English, Chinese, Japanese, Korean, Russian, Greek, Arabic and Hindi prose, Python-like
code, numbers, URLs, emoji and runs of spaces/newlines. Words come from small per-language lexicons with
Zipf-like frequencies, so the piece cache sees realistic repetition. The same SIZE and SEED always give
the same bytes (Python's random.Random is stable across versions for random() and choice()).
"""
import random
import sys

EN = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
      "they you were her she there been one all we their has would when if so no will more can out up about "
      "who into them time could model language token memory stream expert layer attention network compute "
      "Vulkan shader buffer device kernel matrix vector quantized weights cache latency throughput bandwidth "
      "I'm don't can't won't it's we've they'll she'd HELLO WORLD Python GPU NVMe").split()
ZH = list("的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多"
          "天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些"
          "模型语言计算显卡内存专家流式缓存推理训练数据")
JA_KANA = list("あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをんがぎぐげご"
               "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンー")
JA_KANJI = list("日本語東京大学新聞電車時間今日明日話言葉会社仕事")
KO = ("한국어 문장 입니다 그리고 하지만 우리는 모델 토큰 메모리 처리 속도 서울 사람 시간 오늘 내일 컴퓨터 "
      "그래픽 카드 전문가 계산").split()
RU = ("и в не на я быть он с что а по это она этот к но они мы как из у который то за свой весь год от так о "
      "модель язык память скорость вычисление видеокарта эксперт").split()
EL = "και το η ο να σε με για από που είναι δεν θα τα οι μοντέλο γλώσσα μνήμη ταχύτητα".split()
AR = "في من على إلى أن هذا التي الذي مع كان عن ما لا هو نموذج اللغة الذاكرة السرعة".split()
HI = "और का की के में है यह से को पर भी नहीं एक था मॉडल भाषा स्मृति गति".split()
EMOJI = ["🙂", "🚀", "🔥", "💡", "👋🏽", "👨‍👩‍👧", "🇨🇳", "✨", "🎉", "❤️", "😂", "🤖"]
CODE = [
    "def {f}(x, y=None):\n    return x ** 2 + {n}  # {w}\n",
    "for (int i = 0; i < {n}; i++) {{\n\tsum += a[i] * b[i];\n}}\n",
    "if {f}.get('{w}') is not None:\n        print(f\"{{{f}}}: {n}\")\n",
    "const {f} = await fetch(`https://example.com/api/v1/{w}?id={n}`);\n",
    "    {f}_{w} = np.zeros(({n}, {n}), dtype=np.float32)\n",
]


def zipf_pick(rng, words):
    # index ~ floor(len * u^3): strongly favours the first words, like natural text
    return words[int(len(words) * rng.random() ** 3)]


def sentence(rng, words, sep=" ", lo=4, hi=18, end="."):
    n = rng.randint(lo, hi)
    s = sep.join(zipf_pick(rng, words) for _ in range(n))
    return s[:1].upper() + s[1:] + end


def paragraph(rng):
    kind = rng.random()
    if kind < 0.34:
        return " ".join(sentence(rng, EN) for _ in range(rng.randint(2, 6)))
    if kind < 0.48:
        return "".join(sentence(rng, ZH, "", 8, 30, "。") for _ in range(rng.randint(2, 5)))
    if kind < 0.55:
        pool = JA_KANA * 3 + JA_KANJI
        return "".join(sentence(rng, pool, "", 8, 30, "。") for _ in range(rng.randint(2, 4)))
    if kind < 0.61:
        return " ".join(sentence(rng, KO) for _ in range(rng.randint(2, 4)))
    if kind < 0.68:
        return " ".join(sentence(rng, RU) for _ in range(rng.randint(2, 5)))
    if kind < 0.71:
        return " ".join(sentence(rng, EL) for _ in range(rng.randint(1, 3)))
    if kind < 0.74:
        return " ".join(sentence(rng, AR, end=".") for _ in range(rng.randint(1, 3)))
    if kind < 0.77:
        return " ".join(sentence(rng, HI, end="।") for _ in range(rng.randint(1, 3)))
    if kind < 0.90:
        return "".join(rng.choice(CODE).format(f=zipf_pick(rng, EN[:40]).lower(), w=zipf_pick(rng, EN),
                                               n=rng.randint(0, 100000)) for _ in range(rng.randint(2, 6)))
    if kind < 0.95:
        nums = [str(rng.randint(0, 10 ** rng.randint(1, 12))) for _ in range(rng.randint(3, 12))]
        return "Numbers: " + ", ".join(nums) + f" and {rng.random() * 1000:.5f} ({rng.randint(-99, 99)}%)"
    return " ".join(zipf_pick(rng, EN) + rng.choice(EMOJI) for _ in range(rng.randint(3, 10)))


def make(size_bytes, seed):
    rng = random.Random(seed)
    out, n = [], 0
    while n < size_bytes:
        p = paragraph(rng) + rng.choice(["\n\n", "\n", "\n\n\n", "  \n", "\r\n", "\n    \n"])
        out.append(p)
        n += len(p.encode())
    return "".join(out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    mb = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    text = make(int(mb * 1e6), seed)
    with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
        f.write(text)
    print(f"{sys.argv[1]}: {len(text.encode()) / 1e6:.2f} MB, {len(text)} characters, seed {seed}")


if __name__ == "__main__":
    main()
