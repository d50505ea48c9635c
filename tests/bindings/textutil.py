"""textutil.py -- helpers shared by the header and binding readers of
check_bindings.py: the canonical type notation, bracket-aware splitting, and
integer constant expressions (C, Rust and Julia spell them alike enough).

A canonical type is a tuple: ('prim', name) | ('struct', name) |
('ptr', is_const, inner) | ('fn', ret, params); binding readers add their own
kinds ('cstring', 'ref', 'nullable', ...) and compare against these.
"""
import re


def show(t):
    kind = t[0]
    if kind == 'prim' or kind == 'struct':
        return t[1]
    if kind == 'ptr':
        inner = show(t[2])
        return ('const ' if t[1] else '') + inner + ('*' if t[2][0] == 'ptr' else ' *')
    if kind == 'fn':
        return 'fn(%s) -> %s' % (', '.join(show(p) for p in t[2]), show(t[1]))
    if kind == 'cstring':
        return 'Cstring'
    return '?' + str(t[1:])


def split_top(text, sep=','):
    """Splits at `sep` outside (), [], {}, <> (treating '->' as one token)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(text):
        c = text[i]
        if text.startswith('->', i):
            cur.append('->')
            i += 2
            continue
        if c in '([{<':
            depth += 1
        elif c in ')]}>':
            depth -= 1
        if c == sep and depth == 0:
            parts.append(''.join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    tail = ''.join(cur).strip()
    if tail:
        parts.append(tail)
    return parts


def balanced(text, start, open_c='(', close_c=')'):
    """Index just past the bracket matching text[start] (an opening one)."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_c:
            depth += 1
        elif text[i] == close_c:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError('unbalanced %s at %d' % (open_c, start))


def eval_int(expr, known):
    """Value of a C/Rust/Julia integer constant expression, or None."""
    e = expr
    for name in sorted(known, key=len, reverse=True):
        e = re.sub(r'\b%s\b' % re.escape(name), '(%d)' % known[name], e)
    e = re.sub(r'\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU][lL]{0,2}|[lL]{1,2}[uU]?|_?[ui](?:8|16|32|64|size))\b', r'\1', e)
    if not re.fullmatch(r'[\s0-9a-fA-FxX()+\-*/<>|&~]*', e) or not e.strip():
        return None
    try:
        v = eval(e.replace('/', '//'), {'__builtins__': {}})  # only digits and operators remain
    except Exception:
        return None
    return v if isinstance(v, int) else None


# --------------------------------------------------------------------------


def const_values(exprs):
    """Values of the constant expressions that evaluate (they may refer to each other)."""
    out = {}
    for _ in range(len(exprs)):
        before = len(out)
        for name, expr in exprs.items():
            if name not in out:
                v = eval_int(julia_unwrap(expr), out)
                if v is not None:
                    out[name] = v
        if len(out) == before:
            break
    return out


def check_value(lang, name, want, exprs, values, problems):
    if name not in exprs:
        problems.append('%s: constant %s is missing' % (lang, name))
    elif values.get(name) != want:
        got = values.get(name, exprs[name])
        problems.append('%s: constant %s = %s, the header %d' % (lang, name, got, want))


def julia_unwrap(expr):
    """Drops type-constructor calls (Julia's `UInt32(1) << 2` -> `(1) << 2`)."""
    return re.sub(r'\b[A-Za-z_]\w*\s*\(', '(', expr)


# --------------------------------------------------------------------------
