"""cheader.py -- reads include/dszero.h and dlpack.h for check_bindings.py.

A small preprocessor (#if/#ifdef chains, #define values) and a declaration
parser that knows the shapes these two headers use: functions, typedef'd
structs (fields in order, function-pointer fields), opaque structs, enums
(their constants and underlying type), scalar and function-pointer typedefs.
Anything else is an error, so a new construct is noticed, not skipped.
"""
import os
import re

from textutil import eval_int, split_top


def strip_c_comments(text):
    text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
    return re.sub(r'//[^\n]*', ' ', text)


C_PRIMS = {
    'int8_t': 'i8', 'uint8_t': 'u8', 'int16_t': 'i16', 'uint16_t': 'u16',
    'int32_t': 'i32', 'uint32_t': 'u32', 'int64_t': 'i64', 'uint64_t': 'u64',
    'int': 'i32', 'unsigned int': 'u32', 'unsigned': 'u32', 'size_t': 'usize',
    'double': 'f64', 'float': 'f32', 'char': 'char', 'void': 'void',
}


class Header:
    def __init__(self):
        self.functions = {}   # name -> (ret, [(pname, type)])
        self.structs = {}     # name -> [(field, type)] or None (opaque)
        self.typedefs = {}    # name -> type (aliases and fn pointers)
        self.enums = {}       # enum typedef name -> underlying prim
        self.constants = {}   # name -> int
        self.order = []       # (kind, name) for stable reports


def preprocess(text, defined):
    """Keeps the lines whose #if/#ifdef conditions hold; collects #defines."""
    text = text.replace('\\\n', ' ')
    out, stack, defines = [], [], {}

    def cond(expr):
        expr = re.sub(r'defined\s*\(\s*(\w+)\s*\)|defined\s+(\w+)',
                      lambda m: '1' if (m.group(1) or m.group(2)) in defined else '0', expr)
        expr = expr.replace('&&', ' and ').replace('||', ' or ').replace('!', ' not ')
        expr = re.sub(r'\b[A-Za-z_]\w*\b', lambda m: m.group(0) if m.group(0) in ('and', 'or', 'not') else '0', expr)
        try:
            return bool(eval(expr, {'__builtins__': {}}))
        except Exception:
            return False

    # Each open #if is [taking this branch, a branch of the chain was taken].
    for line in text.split('\n'):
        s = line.strip()
        active = all(b for b, _ in stack)
        m = re.match(r'#\s*(ifdef|ifndef|if|elif|else|endif|define|undef|include|error|pragma)\b\s*(.*)', s)
        if not m:
            if active:
                out.append(line)
            continue
        d, rest = m.group(1), m.group(2)
        if d in ('ifdef', 'ifndef', 'if'):
            take = (rest.split()[0] in defined) if d == 'ifdef' else \
                (rest.split()[0] not in defined) if d == 'ifndef' else cond(rest)
            stack.append([take, take])
        elif d == 'elif':
            take = not stack[-1][1] and cond(rest)
            stack[-1] = [take, stack[-1][1] or take]
        elif d == 'else':
            stack[-1] = [not stack[-1][1], True]
        elif d == 'endif':
            stack.pop()
        elif d == 'define' and active:
            dm = re.match(r'(\w+)(\()?\s*(.*)', rest)
            if dm and not dm.group(2):
                defined.add(dm.group(1))
                defines[dm.group(1)] = dm.group(3).strip()
    return '\n'.join(out), defines


def parse_c_type(text, h, where):
    """'const char *' -> ('ptr', True, ('prim', 'char'))."""
    t = text.replace('*', ' * ').split()
    const = False
    base = []
    stars = []
    for tok in t:
        if tok == '*':
            stars.append(False)
        elif tok == 'const':
            if stars:
                pass  # a const pointer: same ABI, no binding expresses it
            else:
                const = True
        elif tok in ('struct', 'enum', 'DSZ_API', 'extern', 'static', 'inline'):
            continue
        else:
            base.append(tok)
    name = ' '.join(base)
    if name in C_PRIMS:
        ty = ('prim', C_PRIMS[name])
    elif name in h.enums:
        ty = ('prim', h.enums[name])
    elif name in h.typedefs:
        ty = h.typedefs[name]
    elif name in h.structs:
        ty = ('struct', name)
    else:
        raise ValueError('%s: unknown C type %r' % (where, name))
    for i, _ in enumerate(stars):
        ty = ('ptr', const if i == 0 else False, ty)
    return ty


def parse_c_params(text, h, where):
    text = text.strip()
    if text in ('', 'void'):
        return []
    params = []
    for i, p in enumerate(split_top(text)):
        m = re.match(r'(.*?)(\w+)\s*$', p)
        if m and m.group(1).strip() and m.group(2) not in C_PRIMS:
            params.append((m.group(2), parse_c_type(m.group(1), h, where)))
        else:
            params.append(('arg%d' % i, parse_c_type(p, h, where)))
    return params


def parse_c_decl(decl, h, where):
    """A field or parameter declaration: (name, type), function pointers too."""
    m = re.match(r'(.*?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)\s*$', decl, re.S)
    if m:
        ret = parse_c_type(m.group(1), h, where)
        return m.group(2), ('fn', ret, tuple(t for _, t in parse_c_params(m.group(3), h, where)))
    m = re.match(r'(.*?)(\w+)\s*$', decl, re.S)
    return m.group(2), parse_c_type(m.group(1), h, where)


def parse_header(path, h, defined):
    text, defines = preprocess(strip_c_comments(open(path).read()), defined)
    for name, value in defines.items():
        v = eval_int(value, h.constants)
        if v is not None:
            h.constants[name] = v
            h.order.append(('const', name))
    text = re.sub(r'extern\s+"C"\s*\{', ' ', text)
    for stmt in split_top(text, ';'):
        stmt = ' '.join(stmt.split())
        if not stmt or stmt == '}':
            continue
        stmt = stmt.lstrip('} ')
        m = re.match(r'(typedef\s+)?enum\s*(\w+)?\s*\{(.*)\}\s*(\w+)?$', stmt, re.S)
        if m:
            value, values = -1, []
            for item in split_top(m.group(3)):
                im = re.match(r'(\w+)\s*(?:=\s*(.+))?$', item)
                value = eval_int(im.group(2), h.constants) if im.group(2) else value + 1
                h.constants[im.group(1)] = value
                h.order.append(('const', im.group(1)))
                values.append(value)
            if m.group(4):
                # GCC and Clang give an enum without negative values unsigned int.
                h.enums[m.group(4)] = 'i32' if min(values) < 0 else 'u32'
                h.order.append(('enum', m.group(4)))
            continue
        m = re.match(r'typedef\s+struct\s*(\w+)?\s*\{(.*)\}\s*(\w+)$', stmt, re.S)
        if m:
            name = m.group(3)
            h.structs[name] = None  # visible to its own fields (self-pointers)
            if m.group(1):
                h.structs.setdefault(m.group(1), None)
            fields = [parse_c_decl(f, h, name) for f in split_top(m.group(2), ';')]
            h.structs[name] = fields
            if m.group(1) and m.group(1) != name:
                del h.structs[m.group(1)]
            h.order.append(('struct', name))
            continue
        m = re.match(r'typedef\s+struct\s+(\w+)\s+(\w+)$', stmt)
        if m:
            h.structs.setdefault(m.group(2), None)
            h.order.append(('struct', m.group(2)))
            continue
        m = re.match(r'typedef\s+(.*?)\(\s*\*\s*(\w+)\s*\)\s*\((.*)\)$', stmt, re.S)
        if m:
            ret = parse_c_type(m.group(1), h, m.group(2))
            h.typedefs[m.group(2)] = ('fn', ret, tuple(t for _, t in parse_c_params(m.group(3), h, m.group(2))))
            h.order.append(('typedef', m.group(2)))
            continue
        m = re.match(r'typedef\s+(.*?)(\w+)$', stmt)
        if m:
            h.typedefs[m.group(2)] = parse_c_type(m.group(1), h, m.group(2))
            h.order.append(('typedef', m.group(2)))
            continue
        m = re.match(r'(?:DSZ_API\s+)?(.*?)(\b\w+)\s*\((.*)\)$', stmt, re.S)
        if m:
            name = m.group(2)
            ret = parse_c_type(m.group(1), h, name)
            h.functions[name] = (ret, parse_c_params(m.group(3), h, name))
            h.order.append(('fn', name))
            continue
        raise ValueError('%s: cannot parse %r' % (path, stmt[:80]))


def read_headers(root, dlpack):
    h = Header()
    defined = {'__GNUC__', '__x86_64__', '__linux__'}
    parse_header(dlpack, h, defined)
    parse_header(os.path.join(root, 'include', 'dszero.h'), h, defined)
    for guard in ('DSZERO_H', 'DLPACK_DLPACK_H_'):
        h.constants.pop(guard, None)
    h.order = [(k, n) for k, n in h.order if not (k == 'const' and n not in h.constants)]
    return h


# --------------------------------------------------------------------------
