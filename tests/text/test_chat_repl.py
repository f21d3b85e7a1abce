#!/usr/bin/env python3
"""`qnext chat` driven through a pseudo-terminal on a tiny random real-vocabulary model (see textlib.py).

python3 test_chat_repl.py QNEXT CONFIG TOKENIZER_JSON

Session 1 (greedy, 5 tokens per answer, --stats): turn 1 == `qnext run`; turn 2 prefills only the new
tokens (the pending last token of turn 1 + the template text after it, counted with `qnext tokenize`) and
its answer equals `qnext generate` over the exact token sequence (so the reused KV/GDN state is right);
multi-line input (\\ and \"\"\" blocks); /reset gives turn 1 again; unknown command; /exit.
Session 2 (long answers): Ctrl-C (\\x03 through the terminal) stops an answer but not the program, the partial
answer stays in the history (the next turn prefills 1 + its own tokens), Ctrl-C at an empty prompt quits.
Session 3 (--ctx just above one turn): the second turn does not fit -> a message naming /reset, no crash;
/reset then works; Ctrl-D quits.
"""
import os
import pty
import re
import select
import signal
import sys
import time

from textlib import TextEnv, chatml, stats_numbers

t = TextEnv(sys.argv[1:])
check = t.check
STATS = re.compile(rb"\[qnext chat: [^\]\n]*\]\n>>> ")


class Chat:
    def __init__(self, *args, backend="cpu"):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execv(t.qnext, [t.qnext, "chat", "-m", t.model, "--backend", backend, *map(str, args)])
        self.buf = b""
        self.log = b""

    def read(self, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise EOFError
        data = data.replace(b"\r\n", b"\n")
        self.buf += data
        self.log += data
        return True

    def expect(self, pattern, timeout=120):
        """Data up to and including the first match of pattern (bytes regex); None on timeout or EOF."""
        rx = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        end = time.time() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            try:
                if not self.read(max(0.0, end - time.time())) and time.time() >= end:
                    return None
            except EOFError:
                return None

    def send(self, text):
        os.write(self.fd, text if isinstance(text, bytes) else text.encode())

    def turn(self, text):
        """Send a message; return (answer bytes, stats dict) once the next prompt shows."""
        self.send(text + "\n")
        chunk = self.expect(STATS)
        if chunk is None:
            return None, None
        echo = text.replace("\r", "").encode() + b"\n"
        i = chunk.rfind(echo)
        body = chunk[i + len(echo):] if i >= 0 else chunk
        answer = body[:body.rfind(b"\n[qnext chat:")]
        st = stats_numbers(chunk.decode(errors="replace").replace("[qnext chat: ", "qnext chat: "), "qnext chat: ")
        return answer, st

    def wait(self, timeout=30):
        end = time.time() + timeout
        while time.time() < end:
            try:
                self.read(0.2)
            except EOFError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def delta(user):
    """Template text after a finished assistant turn for the next user turn."""
    return "<|im_end|>\n" + chatml(user)


def session_turns(backend, light=False):
    n = 5
    p1 = t.tokenize(chatml("Hello"))
    g1 = t.greedy(t.model, p1, n)
    rc, want1, _ = t.qn("run", "-m", t.model, "--backend", backend, "--temp", "0", "--max-tokens", n, "-p", "Hello")
    want1 = want1.replace(b"\r\n", b"\n")
    c = Chat("--temp", 0, "--max-tokens", n, "--stats", backend=backend)
    check(c.expect(rb">>> ", 60) is not None, f"[{backend}] no prompt: {c.log!r}")
    a1, s1 = c.turn("Hello")
    check(s1 and s1["prompt"] == len(p1) and s1["generated"] == n and s1["context"] == len(p1) + n,
          f"[{backend}] turn 1 stats: {s1}")
    check(a1 == want1, f"[{backend}] turn 1 != qnext run:\n {a1!r}\n {want1!r}")
    # turn 2: only the new tokens (the pending last token of turn 1 + the template text after it)
    d2 = t.tokenize(delta("How are you?"))
    a2, s2 = c.turn("How are you?")
    check(s2 and s2["prompt"] == 1 + len(d2) and s2["context"] == s1["context"] + len(d2) + n,
          f"[{backend}] turn 2 must prefill 1 + {len(d2)} new tokens: {s2}")
    want2 = t.detokenize(t.greedy(t.model, p1 + g1 + d2, n)).replace(b"\r\n", b"\n")
    check(a2 == want2, f"[{backend}] turn 2 (reused state) != generate over the whole sequence:\n {a2!r}\n {want2!r}")
    if not light:
        multi_line(c, backend)
    # /reset: the first turn again, from an empty session
    c.send("/reset\n")
    check(c.expect(rb"\(conversation cleared\)\n>>> ", 30) is not None, f"[{backend}] /reset: {c.buf!r}")
    a5, s5 = c.turn("Hello")
    check(s5 and s5["prompt"] == len(p1) and s5["context"] == len(p1) + n and a5 == a1,
          f"[{backend}] after /reset: {s5} {a5!r}")
    c.send("/nonsense\n")
    check(c.expect(rb"unknown command '/nonsense'.*\n>>> ", 30) is not None, f"[{backend}] unknown command")
    c.send("/exit\n")
    rc = c.wait()
    check(rc == 0, f"[{backend}] /exit: exit status {rc}; {c.log[-300:]!r}")


def multi_line(c, backend):
    """A continued line and a \"\"\" block become one message each (counted through the prefill)."""
    d3 = t.tokenize(delta("Hello \nworld"))
    c.send("Hello \\\n")
    _, s3 = c.turn("world")
    check(s3 and s3["prompt"] == 1 + len(d3), f"[{backend}] continued line: {s3} (want {1 + len(d3)})")
    d4 = t.tokenize(delta("line one\nline two"))
    c.send('"""\nline one\n')
    _, s4 = c.turn('line two\n"""')
    check(s4 and s4["prompt"] == 1 + len(d4), f"[{backend}] \"\"\" block: {s4} (want {1 + len(d4)})")


def session_interrupt(backend, light=False):
    c = Chat("--max-tokens", 3000, "--seed", 3, "--stats", backend=backend)
    check(c.expect(rb">>> ", 60) is not None, f"[{backend}] no prompt")
    c.send("Tell me a very long story\n")
    got = c.expect(rb"story\n[\s\S]{20}" if light else rb"story\n[\s\S]{200}", 120)  # wait for some of the answer, then Ctrl-C
    check(got is not None, f"[{backend}] no answer text before Ctrl-C: {c.buf!r}")
    c.send(b"\x03")
    chunk = c.expect(STATS, 60)
    st = stats_numbers((chunk or b"").decode(errors="replace").replace("[qnext chat: ", "qnext chat: "), "qnext chat: ")
    check(chunk is not None and b"[stopped]" in chunk and st and st["stop"] == "interrupted" and st["generated"] < 3000,
          f"[{backend}] Ctrl-C during the answer: {st} {(chunk or c.buf)[-300:]!r}")
    # the program is alive and the partial answer is in the history, closed: the next turn feeds 1 + its tokens
    d = t.tokenize(delta("Thanks"))
    c.send("Thanks\n")
    check(c.expect(rb"Thanks\n[\s\S]{20}", 120) is not None, f"[{backend}] no answer after the interrupt")
    c.send(b"\x03")
    chunk = c.expect(STATS, 60)
    st = stats_numbers((chunk or b"").decode(errors="replace").replace("[qnext chat: ", "qnext chat: "), "qnext chat: ")
    check(st and st["prompt"] == 1 + len(d), f"[{backend}] turn after an interrupted answer: {st} (want {1 + len(d)})")
    c.send(b"\x03")  # Ctrl-C at an empty prompt quits
    rc = c.wait()
    check(rc == 0, f"[{backend}] Ctrl-C at the prompt: exit status {rc}")


def session_context(backend):
    n = 5
    p1 = t.tokenize(chatml("Hello"))
    c = Chat("--temp", 0, "--max-tokens", n, "--ctx", len(p1) + n + 4, "--stats", backend=backend)
    check(c.expect(rb">>> ", 60) is not None, f"[{backend}] no prompt")
    _, s1 = c.turn("Hello")
    check(s1 and s1["generated"] == n, f"[{backend}] first turn with a small context: {s1}")
    c.send("And now a second question that cannot fit\n")
    got = c.expect(rb"too long for the context[^\n]*/reset[^\n]*\n>>> ", 60)
    check(got is not None, f"[{backend}] context overflow message: {c.buf[-400:]!r}")
    c.send("/reset\n")
    c.expect(rb"\(conversation cleared\)\n>>> ", 30)
    _, s2 = c.turn("Hello")
    check(s2 and s2["prompt"] == len(p1), f"[{backend}] after /reset with a small context: {s2}")
    c.send(b"\x04")  # Ctrl-D
    rc = c.wait()
    check(rc == 0, f"[{backend}] Ctrl-D: exit status {rc}")


def contract():
    rc, out, _ = t.qn("chat", "--help")
    check(rc == 0 and b"usage: qnext chat" in out and b"/reset" in out, "chat --help")
    rc, _, err = t.qn("chat", "--bogus")
    check(rc == 2, f"chat --bogus: rc {rc}")
    rc, _, err = t.qn("chat", "-m", t.model, "--backend", "cpu", "--system", b"a\xff")
    check(rc == 2 and "--system is not valid UTF-8 (byte offset 1)" in err, f"chat --system with bad UTF-8: {err!r}")
    rc, _, err = t.qn("chat", "-m", os.path.join(t.tmp, "nope"), "--backend", "cpu", stdin=b"Hi\n")
    check(rc == 1 and "nope" in err, f"chat with a missing model: rc {rc} {err!r}")
    # not a terminal: scripted input works too (no prompts), EOF ends
    rc, out, err = t.qn("chat", "-m", t.model, "--backend", "cpu", "--temp", "0", "--max-tokens", 3, "--stats",
                        stdin=b"Hello\n/reset\nHello\n")
    lines = [l for l in err.splitlines() if l.startswith("[qnext chat:")]
    check(rc == 0 and len(lines) == 2 and lines[0].split(",")[0] == lines[1].split(",")[0] and b">>>" not in out,
          f"scripted chat: rc {rc} {out!r} {err!r}")
    rc, out, err2 = t.qn("chat", "-m", t.model, "--backend", "cpu", "--temp", "0", "--max-tokens", 3, "--stats",
                         stdin=b"Hi \xff there\nHello\n")
    st = stats_numbers(err2.replace("[qnext chat: ", "qnext chat: "), "qnext chat: ")
    check(rc == 0 and "not valid UTF-8 at byte offset 3" in err2 and st and st["prompt"] == len(t.tokenize(chatml("Hello")))
          and st["context"] == st["prompt"] + 3,
          f"invalid UTF-8 message: refused, and the next turn starts from an empty session: {err2!r}")


contract()
session_turns("cpu")
session_interrupt("cpu")
session_context("cpu")
if t.vulkan_ok():  # fewer turns (lavapipe takes about a second per token); input and context logic are shared
    session_turns("vulkan", light=True)
    session_interrupt("vulkan", light=True)
sys.exit(t.finish("text-chat-repl"))
