"""Test counts from Node's built-in test runner (``node --test``), usually behind ``npm test``.

Its closing block, TAP reporter (the default when output is not a terminal, as in the
sandbox) or spec reporter::

    # tests 3            ℹ tests 3
    # suites 0           ℹ suites 0
    # pass 2             ℹ pass 2
    # fail 1             ℹ fail 1
    # cancelled 0        ℹ cancelled 0
    # skipped 0          ℹ skipped 0
    # todo 0             ℹ todo 0

pass -> passed, fail -> failed, cancelled -> errors, skipped -> skipped, todo -> other.
Other runners (mocha, jest, ...) print other lines: :class:`NoSummaryLine`, and the
outcome is taken from the exit code.
"""

from __future__ import annotations

import re

from noa_core.validation.counts import NoSummaryLine, TestCounts

__all__ = ["parse_node_test"]

_LINE = re.compile(r"^(?:#|ℹ|i)\s+(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms)\s+([\d.]+)\s*$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def parse_node_test(output: str) -> TestCounts:
    """The last closing block of ``node --test`` in ``output``."""
    block: dict[str, float] = {}
    last: dict[str, float] = {}
    for raw in output.splitlines():
        m = _LINE.match(_ANSI.sub("", raw).strip())
        if not m:
            continue
        key, value = m.group(1), float(m.group(2))
        if key == "tests" and block:
            last, block = block, {}
        block[key] = value
    if "tests" in block and "pass" in block:
        last = block
    if not last or "pass" not in last:
        raise NoSummaryLine("no node --test closing block ('# tests N', '# pass N') in the output")
    n = {k: int(v) for k, v in last.items() if k != "duration_ms"}
    summary = (f"tests {n.get('tests', 0)}, pass {n.get('pass', 0)}, fail {n.get('fail', 0)}, "
               f"cancelled {n.get('cancelled', 0)}, skipped {n.get('skipped', 0)}, todo {n.get('todo', 0)}")
    other = (("todo", n["todo"]),) if n.get("todo") else ()
    return TestCounts(passed=n.get("pass", 0), failed=n.get("fail", 0), errors=n.get("cancelled", 0),
                      skipped=n.get("skipped", 0), summary_line=summary, tool="node", other=other)
