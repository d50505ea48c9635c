"""julia_side.py -- reads bindings/julia/DSZero.jl/src/LibDSZero.jl and compares
it with the header for check_bindings.py: every `ccall` site (function,
return type, argument type tuple), `struct`s, `const` aliases and values.
"""
import re

from textutil import balanced, check_value, const_values, show, split_top


JULIA_PRIMS = {
    'Int8': 'i8', 'UInt8': 'u8', 'Int16': 'i16', 'UInt16': 'u16', 'Int32': 'i32', 'UInt32': 'u32',
    'Int64': 'i64', 'UInt64': 'u64', 'Cint': 'i32', 'Cuint': 'u32', 'Clong': 'i64', 'Culong': 'u64',
    'Csize_t': 'usize', 'UInt': 'usize', 'Float32': 'f32', 'Cfloat': 'f32', 'Float64': 'f64',
    'Cdouble': 'f64', 'Cchar': 'char', 'Cvoid': 'void', 'Nothing': 'void', 'Bool': 'bool',
    'Cshort': 'i16', 'Cushort': 'u16',
}


def strip_julia(text):
    out, i, n = [], 0, len(text)
    while i < n:
        if text.startswith('#=', i):
            i = text.find('=#', i) + 2
        elif text[i] == '#':
            j = text.find('\n', i)
            i = n if j < 0 else j
        elif text.startswith('"""', i):
            i = text.find('"""', i + 3) + 3
            out.append('""')
        elif text[i] == '"':
            j = i + 1
            while text[j] != '"':
                j += 2 if text[j] == '\\' else 1
            out.append('""')
            i = j + 1
        else:
            out.append(text[i])
            i += 1
    return ''.join(out)


class Julia:
    def __init__(self):
        self.ccalls = {}      # name -> [(ret_text, [arg_text])]
        self.structs = {}     # name -> [(field, type_text)]
        self.aliases = {}     # name -> type text
        self.constants = {}   # name -> expr text


def is_julia_type(text, j):
    t = text.strip()
    return t in JULIA_PRIMS or t == 'Cstring' or re.match(r'(Ptr|Ref)\{.*\}$', t) is not None or \
        t in j.structs or t in j.aliases


def read_julia(path):
    j = Julia()
    text = strip_julia(open(path).read())
    for m in re.finditer(r'(?<![\w.])(?:mutable\s+)?struct\s+(\w+)\b(.*?)\bend\b', text, re.S):
        fields = []
        for line in m.group(2).split('\n'):
            fm = re.match(r'\s*(\w+)\s*::\s*(.+?)\s*$', line)
            if fm:
                fields.append((fm.group(1), fm.group(2)))
        j.structs[m.group(1)] = fields
    for m in re.finditer(r'^\s*const\s+(\w+)\s*=\s*(.+?)\s*$', text, re.M):
        if is_julia_type(m.group(2), j):
            j.aliases[m.group(1)] = m.group(2)
        else:
            j.constants[m.group(1)] = m.group(2)
    for m in re.finditer(r'\bccall\s*\(', text):
        close = balanced(text, m.end() - 1)
        args = split_top(text[m.end():close - 1])
        fm = re.search(r':(dsz_\w+)', args[0]) if args else None
        if not fm or len(args) < 3:
            continue
        tup = args[2].strip()
        if not (tup.startswith('(') and tup.endswith(')')):
            j.ccalls.setdefault(fm.group(1), []).append((args[1], None))
            continue
        types = split_top(tup[1:-1])
        j.ccalls.setdefault(fm.group(1), []).append((args[1], types))
    return j


def julia_type(text, j, seen=()):
    t = text.strip()
    m = re.match(r'(Ptr|Ref)\{(.*)\}$', t, re.S)
    if m:
        return ('ref' if m.group(1) == 'Ref' else 'ptr', None, julia_type(m.group(2), j, seen))
    if t == 'Cstring':
        return ('cstring',)
    if t in JULIA_PRIMS:
        return ('prim', JULIA_PRIMS[t])
    if t in j.structs:
        return ('struct', t)
    if t in j.aliases and t not in seen:
        return julia_type(j.aliases[t], j, seen + (t,))
    return ('unknown', t)


def julia_matches(c, jt, arg=False):
    """Does the Julia type `jt` say the C type `c`? (`arg`: a ccall argument.)"""
    if c[0] == 'fn':
        return jt[0] == 'ptr' and jt[2] == ('prim', 'void')
    if c[0] == 'ptr':
        if c[2] == ('prim', 'char') and (jt == ('cstring',) or
                                         (jt[0] == 'ptr' and jt[2] in (('prim', 'char'), ('prim', 'u8'), ('prim', 'i8')))):
            return True
        if jt[0] == 'ptr' or (arg and jt[0] == 'ref'):
            return julia_matches(c[2], jt[2])
        return False
    return c == jt


def check_julia(h, j, problems):
    p = lambda msg: problems.append('julia: ' + msg)
    values = const_values(j.constants)
    for kind, name in h.order:
        if kind == 'fn':
            ret, params = h.functions[name]
            sites = j.ccalls.get(name)
            if not sites:
                p('function %s is missing (no ccall)' % name)
                continue
            for jret, jargs in sites:
                jr = julia_type(jret, j)
                if not julia_matches(ret, jr):
                    p('%s returns %s, the header %s' % (name, jret.strip(), show(ret)))
                if jargs is None:
                    p('%s: the argument types are not a literal tuple' % name)
                    continue
                if len(jargs) != len(params):
                    p('%s takes %d arguments, the header %d' % (name, len(jargs), len(params)))
                    continue
                for (pname, ct), ja in zip(params, jargs):
                    jt = julia_type(ja, j)
                    if not julia_matches(ct, jt, arg=True):
                        p('%s(%s): %s, the header %s' % (name, pname, ja.strip(), show(ct)))
        elif kind == 'struct':
            fields = h.structs[name]
            if name not in j.structs:
                p('struct %s is missing' % name)
                continue
            if fields is None:
                continue
            jfields = j.structs[name]
            if [f for f, _ in jfields] != [f for f, _ in fields]:
                p('struct %s fields %s, the header %s' % (name, [f for f, _ in jfields], [f for f, _ in fields]))
                continue
            for (fname, ct), (_, jtext) in zip(fields, jfields):
                jt = julia_type(jtext, j)
                if not julia_matches(ct, jt):
                    p('%s.%s: %s, the header %s' % (name, fname, jtext, show(ct)))
        elif kind in ('typedef', 'enum'):
            ct = h.typedefs[name] if kind == 'typedef' else ('prim', h.enums[name])
            if name not in j.aliases and name not in j.structs:
                p('type %s is missing' % name)
            elif name in j.aliases and not julia_matches(ct, julia_type(name, j)):
                p('type %s is %s, the header %s' % (name, j.aliases[name], show(ct)))
        elif kind == 'const':
            check_value('julia', name, h.constants[name], j.constants, values, problems)
    for name in j.ccalls:
        if name not in h.functions:
            p('function %s is not in the header' % name)
