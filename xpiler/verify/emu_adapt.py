"""Source adaptation so that CUDA/HIP kernels compile as host C++ against the CPU emulators.

``adapt_for_emulator(text, dialect)`` returns the source with three rewrites, all of which keep
every line on its original line number (so g++ diagnostics still point at the user's line):

1. Launch syntax. g++ cannot parse ``k<<<grid, block[, shmem[, stream]]>>>(args)``. Every such
   launch becomes ``xpiler_launch(k, grid, block[, shmem[, stream]])(args)``; the runtime headers
   (cuda_emu.h / hip_emu.h, and the BANG runtime with its own overload) define ``xpiler_launch``.
   BANG launches ``k<<<dim, type, queue>>>(args)`` are rewritten the same way. The kernel
   name may be qualified (``ns::k``) or a template-id (``k<float, 4>``); the launch
   configuration may contain parentheses, commas inside parentheses and templates. A kernel
   template launched without template arguments (CUDA deduces them from the arguments) is
   launched through a generic lambda, ``xpiler_launch([](auto&&... a) { k(a...); }, ...)``.
2. Dynamic shared memory. ``extern __shared__ T name[];`` becomes
   ``T *name = (T *)xpiler::gpu::dynamic_shared();`` (the buffer sized by the launch's 3rd
   argument); ``__shared__`` otherwise expands to ``static`` in the headers, which cannot be
   combined with ``extern``.
3. Brace assignment. Clang (hipcc, nvcc's host side differs) accepts ``v = {0};`` for a GCC
   vector type (``__attribute__((vector_size))``, used by the HIP MFMA kernels), g++ does not.
   An assignment statement ``x = {...};`` becomes ``x = XPILER_BRACE_T(x){...};`` (the
   headers define ``XPILER_BRACE_T(x)`` as ``std::remove_reference_t<decltype(x)>``), which
   means the same for every type.
4. ``extern "C"`` on a kernel (``__global__``) definition is blanked out (replaced by spaces)
   when the kernel's name is also a C library function (``sin``, ``exp``, ``max`` ...): the
   emulator compiles device code as host code with <math.h>, where ``extern "C" void
   sin(float*, float*)`` would conflict with libm's ``sin``. Kernels with other names, and host
   entry points (``extern "C" void add_kernel(...)``), keep their linkage.

Comments, string and character literals are never rewritten.
"""

from __future__ import annotations

import re

__all__ = ["adapt_for_emulator", "LIBC_NAMES"]

# C library functions a kernel might be named after (math.h, stdlib.h, string.h).
LIBC_NAMES = frozenset(
    """
    sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2 expm1 log log2
    log10 log1p pow sqrt cbrt hypot erf erfc tgamma lgamma ceil floor round trunc rint nearbyint
    fabs fmod remainder fmin fmax fma fdim frexp ldexp modf copysign nan signbit isnan isinf
    sinf cosf tanf expf logf sqrtf powf fabsf floorf ceilf roundf truncf fminf fmaxf tanhf erff
    abs labs llabs div rand srand malloc calloc realloc free exit abort qsort bsearch atoi atof
    memcpy memset memmove memcmp strlen strcpy strcmp printf puts
    max min
    """.split()
)


def _code_mask(text: str) -> list[bool]:
    """True for characters that are code (not inside comments or string/char literals)."""
    mask = [True] * len(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                mask[k] = False
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                mask[k] = False
            i = j
        elif c in "\"'":
            # raw strings R"delim( ... )delim"
            if c == '"' and i > 0 and text[i - 1] == "R" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_")):
                m = re.match(r'"([^()\\\s]{0,16})\(', text[i:])
                if m:
                    end = text.find(")" + m.group(1) + '"', i)
                    j = n if end < 0 else end + len(m.group(1)) + 2
                    for k in range(i, j):
                        mask[k] = False
                    i = j
                    continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            for k in range(i, j):
                mask[k] = False
            i = j
        else:
            i += 1
    return mask


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


def _name_start(text: str, end: int, mask: list[bool]) -> int:
    """Start of the kernel expression that ends just before index `end` (exclusive)."""
    i = end
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    while True:
        if i > 0 and text[i - 1] == ">" and mask[i - 1]:
            # template argument list: match angle brackets backwards
            depth, j = 0, i - 1
            while j >= 0:
                ch = text[j]
                if mask[j]:
                    if ch in ">)]":
                        depth += 1
                    elif ch in "<([":
                        depth -= 1
                        if depth == 0:
                            break
                j -= 1
            i = j
            while i > 0 and text[i - 1] in " \t":
                i -= 1
        j = i
        while j > 0 and (text[j - 1].isalnum() or text[j - 1] == "_"):
            j -= 1
        if j == i:
            return i
        i = j
        if i >= 2 and text[i - 2 : i] == "::":
            i -= 2
            continue
        return i


def _scan_config(text: str, start: int, mask: list[bool]) -> tuple[list[tuple[int, int]], int]:
    """From just after '<<<', split the launch configuration at top-level commas.

    Returns the (begin, end) spans of the configuration expressions and the index just after
    the closing '>>>'.
    """
    depth, i, n = 0, start, len(text)
    parts, part_start = [], start
    while i < n:
        ch = text[i]
        if not mask[i]:
            i += 1
            continue
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif depth == 0 and text.startswith(">>>", i):
            parts.append((part_start, i))
            return parts, i + 3
        elif depth == 0 and ch == ",":
            parts.append((part_start, i))
            part_start = i + 1
        i += 1
    raise ValueError("unterminated <<< ... >>> launch configuration")


_TEMPLATE_KERNEL = re.compile(
    r"template\s*<[^;{}]*?>\s*(?:(?:__global__|__host__|__device__|static|inline|extern\s+\"C\"|"
    r"__launch_bounds__\s*\([^)]*\))\s+)*void\s+(?:__launch_bounds__\s*\([^)]*\)\s*)?(?P<name>[A-Za-z_]\w*)\s*\("
)


def _template_kernels(text: str) -> set[str]:
    """Names of function templates declared `__global__` (candidates for argument deduction)."""
    names = set()
    for m in _TEMPLATE_KERNEL.finditer(text):
        if "__global__" in m.group(0):
            names.add(m.group("name"))
    return names


def _rewrite_launches(text: str) -> str:
    mask = _code_mask(text)
    templates = _template_kernels(text)
    out: list[str] = []
    pos = 0
    for m in re.finditer(r"<<<", text):
        s = m.start()
        if s < pos or not mask[s]:
            continue
        name_begin = _name_start(text, s, mask)
        name = text[name_begin:s].strip()
        if not name:
            continue
        parts, after = _scan_config(text, m.end(), mask)
        if not 2 <= len(parts) <= 4:
            raise ValueError(f"launch of {name} needs 2 to 4 configuration arguments, got {len(parts)}")
        # whitespace (maybe newlines) between '>>>' and '('
        j = after
        while j < len(text) and text[j] in " \t\r\n":
            j += 1
        if j >= len(text) or text[j] != "(":
            continue
        cfg = ",".join(text[b:e] for b, e in parts)
        if name in templates:
            # a kernel template launched without template arguments: CUDA deduces them from
            # the call arguments, so launch a generic lambda that calls it
            repl = f"xpiler_launch([](auto&&... xpiler_a) {{ {name}(xpiler_a...); }},{cfg})"
        else:
            repl = f"xpiler_launch({name},{cfg})"
        original = text[name_begin:j]
        repl += "\n" * (original.count("\n") - repl.count("\n"))
        out.append(text[pos:name_begin])
        out.append(repl)
        pos = j
    out.append(text[pos:])
    return "".join(out)


_DYN_SHARED = re.compile(
    r"extern\s+__shared__\s+(?P<type>(?:[A-Za-z_][\w:<>,\s\*]*?|__align__\s*\(\s*\d+\s*\)\s*)+?)"
    r"\s*(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;"
)


def _rewrite_dynamic_shared(text: str) -> str:
    mask = _code_mask(text)

    def repl(m: re.Match) -> str:
        if not mask[m.start()]:
            return m.group(0)
        typ = re.sub(r"__align__\s*\(\s*\d+\s*\)", "", m.group("type")).strip()
        typ = " ".join(typ.split())
        new = f"{typ} *{m.group('name')} = ({typ} *)xpiler::gpu::dynamic_shared();"
        return new + "\n" * m.group(0).count("\n")

    return _DYN_SHARED.sub(repl, text)


# A static `__shared__ T name[N];` (statement level; not extern): poisoned when the block's
# first thread reaches it, before any other thread of the block has started, so a kernel
# that reads shared memory nobody wrote shows it (verification varies the poison byte).
_STATIC_SHARED = re.compile(
    r"(?<![\w])__shared__\s+[A-Za-z_][\w:<>\s\*]*?\s(?P<name>[A-Za-z_]\w*)\s*(?:\[[^;\]]*\]\s*)+;"
)


def _poison_static_shared(text: str) -> str:
    mask = _code_mask(text)

    def repl(m: re.Match) -> str:
        before = text[max(0, m.start() - 7):m.start()]
        if not mask[m.start()] or "extern" in before:
            return m.group(0)
        return m.group(0) + f" XPILER_POISON_SHARED({m.group('name')});"

    return _STATIC_SHARED.sub(repl, text)


_EXTERN_C_KERNEL = re.compile(
    r'extern\s+"C"(?P<mid>(?:\s+(?:__global__|__mlu_global__|__mlu_entry__|__launch_bounds__\s*\([^)]*\)|static|inline|void|__host__|__device__))+)'
    r"\s+(?P<name>[A-Za-z_]\w*)\s*\("
)


def _strip_extern_c(text: str) -> str:
    mask = _code_mask(text)

    def repl(m: re.Match) -> str:
        mid = m.group("mid")
        is_kernel = any(q in mid for q in ("__global__", "__mlu_global__", "__mlu_entry__"))
        if not mask[m.start()] or not is_kernel or m.group("name") not in LIBC_NAMES:
            return m.group(0)
        head = 'extern "C"'
        k = m.group(0).index('"C"') + 3
        return " " * k + m.group(0)[k:] if m.group(0).startswith(head) else m.group(0)

    return _EXTERN_C_KERNEL.sub(repl, text)


_BRACE_ASSIGN = re.compile(
    r"(?P<pre>(?:^|[;{})]|\belse\b)\s*)(?P<lhs>[A-Za-z_]\w*(?:(?:\.|->)[A-Za-z_]\w*|\[[^\[\]\n]*\])*)(?P<eq>\s*=\s*)\{",
    re.M,
)
_NOT_LHS = frozenset({"return", "case", "else", "do", "goto", "typedef", "using", "operator"})


def _rewrite_brace_assignments(text: str) -> str:
    mask = _code_mask(text)

    def repl(m: re.Match) -> str:
        lhs = m.group("lhs")
        if not mask[m.start("lhs")] or lhs.split(".")[0].split("-")[0].split("[")[0] in _NOT_LHS:
            return m.group(0)
        return f"{m.group('pre')}{lhs}{m.group('eq')}XPILER_BRACE_T({lhs}){{"

    return _BRACE_ASSIGN.sub(repl, text)


def adapt_for_emulator(text: str, dialect: str) -> str:
    """Rewrite a CUDA, HIP or BANG source so that g++ can compile it with cuda_emu.h /
    hip_emu.h / bang_emu.h.

    Line numbers are preserved. "cuda" and "hip" get all rewrites; "mlu" (BANG C) only the
    launch and `extern "C"` rewrites (1 and 4), since the others rely on the GPU headers. A
    source containing `__mlu_global__` / `__mlu_entry__` is treated as BANG whatever the
    dialect argument says.
    """
    if dialect not in ("cuda", "hip", "mlu"):
        raise ValueError(f"adapt_for_emulator: unsupported dialect {dialect!r} (expected 'cuda', 'hip' or 'mlu')")
    if "__mlu_global__" in text or "__mlu_entry__" in text:
        dialect = "mlu"
    text = _strip_extern_c(text)
    if dialect != "mlu":
        text = _rewrite_dynamic_shared(text)
        text = _poison_static_shared(text)
        text = _rewrite_brace_assignments(text)
    text = _rewrite_launches(text)
    return text
