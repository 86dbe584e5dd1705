"""What the front-end understood of a file: kernels, parameter roles, launches, intrinsics.

This is the report behind `xpiler parse`; it is also a quick way for a user to see why
xpiler treats a parameter as an input or an output.
"""
from __future__ import annotations

from .ir import nodes as N
from .ir.entry import host_entry
from .ir.roles import param_roles
from .ir.types import type_str
from .ir.visitor import walk
from .lang import print_program
from .lang.printer import CPrinter


def _expr(e) -> str:
    return CPrinter().expr(e) if e is not None else None


def intrinsics_used(program: N.Program, fn: N.Function) -> list[str]:
    from .platforms.registry import lookup

    names = set()
    for n in walk(fn.body):
        if isinstance(n, N.Call) and lookup(program.dialect, n.func) is not None:
            names.add(n.func)
        elif isinstance(n, N.Dma):
            names.add("__memcpy_async" if n.is_async else "__memcpy")
        elif isinstance(n, N.Barrier):
            names.add(f"barrier:{n.scope}")
    return sorted(names)


def describe(program: N.Program, config: dict | None = None) -> dict:
    kernels = []
    for f in program.functions:
        if f.kind == "host":
            continue
        roles = param_roles(f, program)
        kernels.append({
            "name": f.name,
            "kind": f.kind,
            "line": f.span.line if f.span else None,
            "params": [{"name": p.name, "dtype": type_str(p.dtype), "role": roles[p.name]} for p in f.params],
            "launch_bounds": [_expr(e) for e in f.launch_bounds],
            "intrinsics": intrinsics_used(program, f),
        })
    entry = host_entry(program, config)
    entry_d = None
    if entry is not None:
        entry_d = {
            "name": entry.name,
            "synthesized": entry.synthesized,
            "signature": f"void {entry.name}(" + ", ".join(f"{type_str(p.dtype)} {p.name}" for p in entry.params) + ")",
            "buffers": [{"name": b.name, "elem": type_str(b.elem), "role": b.role, "bytes": _expr(b.nbytes)}
                        for b in entry.buffers],
            "scalars": list(entry.scalars),
            "launches": [{"kernel": l.kernel, "grid": [_expr(e) for e in l.grid],
                          "block": [_expr(e) for e in l.block], "func_type": l.func_type,
                          "args": [_expr(a) for a in l.args]} for l in entry.launches],
            "notes": list(entry.notes),
        }
    return {"dialect": program.dialect, "defines": {d.name: _expr(d.value) for d in program.defines},
            "kernels": kernels, "host_entry": entry_d}


def describe_text(info: dict) -> str:
    lines = [f"dialect: {info['dialect']}"]
    for k in info["kernels"]:
        lines.append(f"{k['kind']} {k['name']} (line {k['line']})")
        for p in k["params"]:
            lines.append(f"  {p['role']:7} {p['dtype']:16} {p['name']}")
        if k["launch_bounds"]:
            lines.append(f"  launch_bounds: {', '.join(k['launch_bounds'])}")
        lines.append(f"  intrinsics: {', '.join(k['intrinsics']) or '-'}")
    e = info["host_entry"]
    if e:
        lines.append(f"host entry: {e['signature']}" + ("  [synthesized from platform defaults]" if e["synthesized"] else ""))
        for b in e["buffers"]:
            lines.append(f"  buffer {b['name']}: {b['role']}, {b['elem']}, bytes = {b['bytes'] or 'inferred from indexing'}")
        for l in e["launches"]:
            shape = f"grid({', '.join(l['grid'])})" + (f" block({', '.join(l['block'])})" if l["block"] else "")
            lines.append(f"  launch {l['kernel']}: {shape}" + (f" {l['func_type']}" if l["func_type"] else ""))
    return "\n".join(lines)


__all__ = ["describe", "describe_text", "intrinsics_used", "print_program"]
