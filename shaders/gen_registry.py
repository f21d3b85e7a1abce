#!/usr/bin/env python3
"""gen_registry.py — build the kernel registry (qn_kernels.h + qn_kernels.c) from glslang's --vn headers.

usage: gen_registry.py OUT_H OUT_C NAME SOURCE DEFINES SPV_H [NAME SOURCE DEFINES SPV_H ...]

Reads each SPIR-V module (the hex words of the header) and extracts what the runtime needs:
storage-buffer bindings, push-constant size, specialization constants and their defaults, and the
declared capabilities (as QN_FEAT_* bits). A kernel NAME has the fallback NAME_nosg when that exists.
Fails loudly on anything the runtime cannot bind (other descriptor sets, uniform buffers, gaps)."""
import re
import sys

# SPIR-V opcodes / enums used here (SPIR-V 1.5 spec)
OP_CAPABILITY, OP_TYPE_INT, OP_TYPE_FLOAT, OP_TYPE_VECTOR, OP_TYPE_ARRAY = 17, 21, 22, 23, 28
OP_TYPE_RUNTIME_ARRAY, OP_TYPE_STRUCT, OP_TYPE_POINTER, OP_CONSTANT = 29, 30, 32, 43
OP_SPEC_TRUE, OP_SPEC_FALSE, OP_SPEC_CONSTANT, OP_VARIABLE = 48, 49, 50, 59
OP_SPEC_COMPOSITE, OP_DECORATE, OP_MEMBER_DECORATE = 51, 71, 72
DEC_SPEC_ID, DEC_BUILTIN, BUILTIN_WG_SIZE, DEC_ARRAY_STRIDE, DEC_NON_WRITABLE, DEC_BINDING, DEC_SET, DEC_OFFSET = 1, 11, 25, 6, 24, 33, 34, 35
SC_UNIFORM, SC_PUSH, SC_STORAGE = 2, 9, 12

CAPS = {
    1: None, 2: None, 3: None,  # Matrix, Shader, Geometry
    9: 'QN_FEAT_FP16', 10: 'QN_FEAT_FP64', 11: 'QN_FEAT_INT64', 12: 'QN_FEAT_INT64_ATOMICS',
    22: 'QN_FEAT_INT16', 39: 'QN_FEAT_INT8',
    61: 'QN_FEAT_SG_BASIC', 62: 'QN_FEAT_SG_VOTE', 63: 'QN_FEAT_SG_ARITH', 64: 'QN_FEAT_SG_BALLOT',
    65: 'QN_FEAT_SG_SHUFFLE', 66: 'QN_FEAT_SG_SHUFFLE_REL', 67: 'QN_FEAT_SG_CLUSTERED', 68: 'QN_FEAT_SG_QUAD',
    4433: 'QN_FEAT_STORAGE16', 4448: 'QN_FEAT_STORAGE8', 5345: 'QN_FEAT_MEMORY_MODEL',
    5346: 'QN_FEAT_MEMORY_MODEL', 5347: 'QN_FEAT_BDA',  # VulkanMemoryModelDeviceScope, PhysicalStorageBufferAddresses
    6016: 'QN_FEAT_INT_DOT', 6017: 'QN_FEAT_INT_DOT', 6018: 'QN_FEAT_INT_DOT', 6019: 'QN_FEAT_INT_DOT',
    6033: 'QN_FEAT_FLOAT_ATOMIC_ADD',
    5357: 'QN_FEAT_COOPMAT_NV',  # CooperativeMatrixNV
    4434: 'QN_FEAT_STORAGE16', 4435: 'QN_FEAT_STORAGE16',  # uniform+storage 16-bit, push-constant 16-bit
    4449: 'QN_FEAT_STORAGE8', 4450: 'QN_FEAT_STORAGE8',
}


def die(name, msg):
    sys.exit(f'gen_registry.py: kernel {name}: {msg}')


def words_of(path):
    text = open(path).read()
    body = text[text.index('{') + 1:text.rindex('}')]
    return [int(w, 16) for w in re.findall(r'0x[0-9a-fA-F]+', body)]


def instructions(words):
    i = 5
    while i < len(words):
        n, op = words[i] >> 16, words[i] & 0xffff
        if n == 0:
            raise ValueError('zero-length instruction')
        yield op, words[i + 1:i + n]
        i += n


def type_size(types, member_off, t):
    kind = types[t]
    if kind[0] in ('int', 'float'):
        return kind[1] // 8
    if kind[0] == 'vector':
        return type_size(types, member_off, kind[1]) * kind[2]
    if kind[0] == 'struct':
        return max((member_off.get((t, m), 0) + type_size(types, member_off, mt)
                    for m, mt in enumerate(kind[1])), default=0)
    raise ValueError(f'push constant member type {kind[0]} is not supported (use 32-bit scalars)')


def analyse(name, words):
    if not words or words[0] != 0x07230203:
        die(name, 'not a SPIR-V module')
    caps, deco, mdeco, types, ptrs, variables, spec, composites = set(), {}, {}, {}, {}, [], {}, {}
    for op, a in instructions(words):
        if op == OP_CAPABILITY:
            caps.add(a[0])
        elif op == OP_DECORATE:
            deco.setdefault(a[0], {})[a[1]] = a[2] if len(a) > 2 else True
        elif op == OP_MEMBER_DECORATE:
            mdeco.setdefault((a[0], a[1]), {})[a[2]] = a[3] if len(a) > 3 else True
        elif op == OP_TYPE_INT:
            types[a[0]] = ('int', a[1])
        elif op == OP_TYPE_FLOAT:
            types[a[0]] = ('float', a[1])
        elif op == OP_TYPE_VECTOR:
            types[a[0]] = ('vector', a[1], a[2])
        elif op in (OP_TYPE_ARRAY, OP_TYPE_RUNTIME_ARRAY):
            types[a[0]] = ('array', a[1])
        elif op == OP_TYPE_STRUCT:
            types[a[0]] = ('struct', list(a[1:]))
        elif op == OP_TYPE_POINTER:
            ptrs[a[0]] = (a[1], a[2])
        elif op == OP_VARIABLE:
            variables.append((a[1], a[2], a[0]))  # result id, storage class, pointer type
        elif op == OP_SPEC_CONSTANT:
            spec[a[1]] = a[2]
        elif op == OP_SPEC_COMPOSITE:
            composites[a[1]] = a[2:]
        elif op in (OP_SPEC_TRUE, OP_SPEC_FALSE):
            spec[a[1]] = 1 if op == OP_SPEC_TRUE else 0
    member_off = {k: v[DEC_OFFSET] for k, v in mdeco.items() if DEC_OFFSET in v}

    binds, write_mask, push_size = set(), 0, 0
    for vid, sc, ptype in variables:
        pointee = ptrs[ptype][1]
        d = deco.get(vid, {})
        if sc == SC_PUSH:
            push_size = type_size(types, member_off, pointee)
        elif DEC_BINDING in d:
            if sc != SC_STORAGE:
                die(name, f'binding {d[DEC_BINDING]} is not a storage buffer (only SSBOs are supported)')
            if d.get(DEC_SET, 0) != 0:
                die(name, f'binding {d[DEC_BINDING]} is in descriptor set {d[DEC_SET]} (only set 0 is supported)')
            b = d[DEC_BINDING]
            binds.add(b)
            nmem = len(types[pointee][1])
            readonly = DEC_NON_WRITABLE in d or all(
                DEC_NON_WRITABLE in mdeco.get((pointee, m), {}) for m in range(nmem))
            if not readonly:
                write_mask |= 1 << b
    nbind = max(binds) + 1 if binds else 0
    if binds != set(range(nbind)):
        die(name, f'bindings {sorted(binds)} are not numbered 0..{nbind - 1} without gaps')
    if nbind > 16:
        die(name, f'{nbind} bindings (at most 16)')
    if push_size > 128:
        die(name, f'push constants of {push_size} bytes (at most 128)')

    # local_size_x_id = N makes glslang emit a second constant with SpecId N (default 1) inside the
    # gl_WorkGroupSize composite; the named `constant_id = N` constant carries the real default.
    wg_members = set()
    for cid, parts in composites.items():
        if deco.get(cid, {}).get(DEC_BUILTIN) == BUILTIN_WG_SIZE:
            wg_members.update(parts)
    spec_ids = {}
    for cid, d in sorted(deco.items(), key=lambda kv: kv[0] in wg_members, reverse=True):
        if DEC_SPEC_ID in d:
            spec_ids[d[DEC_SPEC_ID]] = spec.get(cid, 0)  # non-composite constants are written last
    nspec = max(spec_ids) + 1 if spec_ids else 0
    if set(spec_ids) != set(range(nspec)) or nspec > 8:
        die(name, f'specialization constant ids {sorted(spec_ids)} must be 0..n-1 with n <= 8')
    feats = set()
    for c in caps:
        f = CAPS.get(c, 'QN_FEAT_UNKNOWN')
        if f:
            feats.add(f)
    return nbind, write_mask, push_size, sorted(feats), [spec_ids[i] for i in range(nspec)]


def main():
    out_h, out_c, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    if len(rest) % 4:
        sys.exit('gen_registry.py: arguments must come in groups of NAME SOURCE DEFINES SPV_H')
    kernels = [rest[i:i + 4] for i in range(0, len(rest), 4)]
    names = [k[0] for k in kernels]
    enum = [f'QN_K_{n.upper()}' for n in names]
    with open(out_h, 'w') as f:
        f.write('/* qn_kernels.h — generated by shaders/gen_registry.py from shaders/meson.build; do not edit. */\n'
                '#ifndef QN_KERNELS_H\n#define QN_KERNELS_H\n\n#include "qn_kernel.h"\n\nenum qn_kernel {\n')
        for e in enum:
            f.write(f'    {e},\n')
        f.write('    QN_K_COUNT\n};\n\n/* indexed by enum qn_kernel */\n'
                'extern const struct qn_kernel_info qn_kernel_infos[QN_K_COUNT];\n\n#endif\n')
    with open(out_c, 'w') as f:
        f.write('/* qn_kernels.c — generated by shaders/gen_registry.py from shaders/meson.build; do not edit. */\n'
                '#include <stdint.h>\n\n#include "qn_kernels.h"\n\n')
        for n, _, _, h in kernels:
            f.write(f'#include "{h.split("/")[-1]}"\n')
        f.write('\nconst struct qn_kernel_info qn_kernel_infos[QN_K_COUNT] = {\n')
        for (n, src, defs, h), e in zip(kernels, enum):
            words = words_of(h)
            nbind, wmask, push, feats, spec = analyse(n, words)
            fb = names.index(n + '_nosg') if n + '_nosg' in names else -1
            dstr = ' '.join('-D' + d for d in defs.split(',') if d)
            f.write(f'    [{e}] = {{ "{n}", "{src}", "{dstr}", qn_spv_{n}, {len(words)}u,\n'
                    f'        {nbind}u, 0x{wmask:x}u, {push}u, {" | ".join(feats) or "0"},\n'
                    f'        {len(spec)}u, {{ {", ".join(str(s) + "u" for s in spec) or "0"} }}, {fb} }},\n')
        f.write('};\n')


if __name__ == '__main__':
    main()
