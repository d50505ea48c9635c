"""rust_side.py -- reads bindings/rust/dszero-sys/src/*.rs and compares it with
the header for check_bindings.py: `extern "C"` fns, `#[repr(C)]` structs,
`pub type` aliases (resolved) and `pub const` values.
"""
import os
import re

from textutil import balanced, check_value, const_values, show, split_top


RUST_PRIMS = {
    'i8': 'i8', 'u8': 'u8', 'i16': 'i16', 'u16': 'u16', 'i32': 'i32', 'u32': 'u32', 'i64': 'i64',
    'u64': 'u64', 'usize': 'usize', 'isize': 'isize', 'f32': 'f32', 'f64': 'f64', 'bool': 'bool',
    'c_char': 'char', 'c_int': 'i32', 'c_uint': 'u32', 'c_long': 'i64', 'c_ulong': 'u64',
    'c_float': 'f32', 'c_double': 'f64', 'c_schar': 'i8', 'c_uchar': 'u8', 'c_short': 'i16',
    'c_ushort': 'u16', 'c_void': 'void', '()': 'void',
}


def strip_rust(text):
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith('//', i):
            i = text.find('\n', i) if text.find('\n', i) >= 0 else n
        elif text.startswith('/*', i):
            i = text.find('*/', i) + 2
        elif text.startswith('"', i):
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append('"C"' if text[i:j + 1] == '"C"' else '""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


class Rust:
    def __init__(self):
        self.functions = {}   # name -> (ret_text, [param_text])
        self.structs = {}     # name -> [(field, type_text)], repr_c
        self.aliases = {}     # name -> type text
        self.constants = {}   # name -> expr text


def read_rust(src_dir):
    r = Rust()
    for fn in sorted(os.listdir(src_dir)):
        if not fn.endswith('.rs'):
            continue
        text = strip_rust(open(os.path.join(src_dir, fn)).read())
        for m in re.finditer(r'(?:unsafe\s+)?extern\s+"C"\s*\{', text):
            block = text[m.end():balanced(text, m.end() - 1, '{', '}') - 1]
            for fm in re.finditer(r'(?:pub(?:\([^)]*\))?\s+)?(?:safe\s+|unsafe\s+)?fn\s+(\w+)\s*\(', block):
                close = balanced(block, fm.end() - 1)
                params = [p.split(':', 1)[1].strip() if ':' in p else p for p in split_top(block[fm.end():close - 1])]
                rest = block[close:block.index(';', close)]
                ret = rest.split('->', 1)[1].strip() if '->' in rest else '()'
                r.functions[fm.group(1)] = (ret, params)
        for m in re.finditer(r'((?:#\[[^\]]*\]\s*)*)pub\s+struct\s+(\w+)\s*\{', text):
            body = text[m.end():balanced(text, m.end() - 1, '{', '}') - 1]
            fields = []
            for f in split_top(body):
                fm = re.match(r'(?:pub(?:\([^)]*\))?\s+)?(\w+)\s*:\s*(.+)$', f, re.S)
                if fm:
                    fields.append((fm.group(1), ' '.join(fm.group(2).split())))
            r.structs[m.group(2)] = (fields, bool(re.search(r'repr\s*\(\s*C', m.group(1))))
        for m in re.finditer(r'pub\s+type\s+(\w+)\s*=\s*([^;]+);', text):
            r.aliases[m.group(1)] = ' '.join(m.group(2).split())
        for m in re.finditer(r'pub\s+const\s+(\w+)\s*:\s*[^=]+=\s*([^;]+);', text):
            r.constants[m.group(1)] = ' '.join(m.group(2).split())
    return r


def rust_type(text, r, seen=()):
    t = text.strip()
    if t.startswith('*const ') or t.startswith('*mut '):
        const = t.startswith('*const ')
        return ('ptr', const, rust_type(t.split(' ', 1)[1], r, seen))
    m = re.match(r'Option\s*<(.*)>$', t, re.S)
    if m:
        inner = rust_type(m.group(1), r, seen)
        return ('nullable',) + inner[1:] if inner[0] == 'rawfn' else ('option', inner)
    m = re.match(r'(?:unsafe\s+)?extern\s+"C"\s+fn\s*\((.*)\)\s*(?:->\s*(.+))?$', t, re.S)
    if m:
        params = [p.split(':', 1)[1] if ':' in p else p for p in split_top(m.group(1))]
        ret = rust_type(m.group(2) or '()', r, seen)
        return ('rawfn', ret, tuple(rust_type(p, r, seen) for p in params))
    name = t.split('::')[-1].strip()
    if name in RUST_PRIMS:
        return ('prim', RUST_PRIMS[name])
    if name in r.structs:
        return ('struct', name)
    if name in r.aliases and name not in seen:
        return rust_type(r.aliases[name], r, seen + (name,))
    return ('unknown', name)


def rust_matches(c, rt):
    """Does the Rust type `rt` (canonical) say exactly the C type `c`?"""
    if c[0] == 'fn':
        # A C function pointer may be NULL: Rust must wrap it in Option.
        return rt[0] == 'nullable' and rust_matches(c[1], rt[1]) and len(c[2]) == len(rt[2]) and \
            all(rust_matches(a, b) for a, b in zip(c[2], rt[2]))
    if c[0] == 'ptr':
        return rt[0] == 'ptr' and rt[1] == c[1] and rust_matches(c[2], rt[2])
    return c == rt


def rust_show(rt):
    if rt[0] == 'nullable':
        return 'Option<fn(%s) -> %s>' % (', '.join(rust_show(p) for p in rt[2]), rust_show(rt[1]))
    if rt[0] == 'rawfn':
        return 'fn(%s) -> %s' % (', '.join(rust_show(p) for p in rt[2]), rust_show(rt[1]))
    if rt[0] == 'ptr':
        return ('*const ' if rt[1] else '*mut ') + rust_show(rt[2])
    if rt[0] == 'option':
        return 'Option<%s>' % rust_show(rt[1])
    return rt[1] if len(rt) > 1 else str(rt)


def check_rust(h, r, problems):
    p = lambda msg: problems.append('rust: ' + msg)
    values = const_values(r.constants)
    for kind, name in h.order:
        if kind == 'fn':
            ret, params = h.functions[name]
            if name not in r.functions:
                p('function %s is missing' % name)
                continue
            rret, rparams = r.functions[name]
            rr = rust_type(rret, r)
            if not rust_matches(ret, rr):
                p('%s returns %s, the header %s' % (name, rret, show(ret)))
            if len(rparams) != len(params):
                p('%s takes %d parameters, the header %d' % (name, len(rparams), len(params)))
                continue
            for (pname, ct), rp in zip(params, rparams):
                rt = rust_type(rp, r)
                if not rust_matches(ct, rt):
                    p('%s(%s): %s, the header %s' % (name, pname, rp, show(ct)))
        elif kind == 'struct':
            fields = h.structs[name]
            if name not in r.structs:
                p('struct %s is missing' % name)
                continue
            rfields, repr_c = r.structs[name]
            if not repr_c:
                p('struct %s is not #[repr(C)]' % name)
            if fields is None:
                continue
            if [f for f, _ in rfields] != [f for f, _ in fields]:
                p('struct %s fields %s, the header %s' % (name, [f for f, _ in rfields], [f for f, _ in fields]))
                continue
            for (fname, ct), (_, rtext) in zip(fields, rfields):
                rt = rust_type(rtext, r)
                if not rust_matches(ct, rt):
                    p('%s.%s: %s, the header %s' % (name, fname, rtext, show(ct)))
        elif kind in ('typedef', 'enum'):
            ct = h.typedefs[name] if kind == 'typedef' else ('prim', h.enums[name])
            if name not in r.aliases and name not in r.structs:
                p('type %s is missing' % name)
            elif name in r.aliases and not rust_matches(ct, rust_type(name, r)):
                p('type %s is %s, the header %s' % (name, rust_show(rust_type(name, r)), show(ct)))
        elif kind == 'const':
            check_value('rust', name, h.constants[name], r.constants, values, problems)
    for name in r.functions:
        if name not in h.functions:
            p('function %s is not in the header' % name)
