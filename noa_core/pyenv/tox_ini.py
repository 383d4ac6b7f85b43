"""``tox.ini`` ``[testenv] deps``: the packages tox installs before running the tests.

Lines with ``{[section]key}`` substitutions or other ``{...}`` placeholders, and
factor-conditional lines (``py38: pytest<7``), are notes. ``-r`` includes are followed
through the requirement-file reader (inside the tree only).
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

from noa_core.pyenv._files import (
    DeclarationError,
    Part,
    Reading,
    exists,
    parse_requirement,
    read_declaration,
    short,
)
from noa_core.pyenv.requirements_txt import logical_lines, read_requirement_file

TOX_INI = "tox.ini"
_SUBSTITUTION = re.compile(r"\{\[[^\]]*\][^}]*\}")
_FACTOR = re.compile(r"^!?[A-Za-z0-9_.{},!-]+:\s")
_INCLUDE = re.compile(r"^(?:-r|--requirement)\s*=?\s*(?P<path>\S+)$")


def read_tox_ini(tree: Path) -> Reading:
    out = Reading()
    if not exists(tree, TOX_INI):
        return out
    out.present = True
    try:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(read_declaration(tree, TOX_INI), source=TOX_INI)
    except DeclarationError as exc:
        out.notes.append(str(exc))
        return out
    except configparser.Error as exc:
        out.notes.append(f"{TOX_INI}: not a valid INI file ({short(str(exc), 100)}); ignored")
        return out
    if not parser.has_option("testenv", "deps"):
        return out
    where = f"{TOX_INI} [testenv] deps"
    reqs: list[str] = []
    for line in logical_lines(parser.get("testenv", "deps")):
        if _SUBSTITUTION.search(line):
            out.notes.append(f"{where}: {short(line, 80)!r} is a tox substitution; skipped")
            continue
        if _FACTOR.match(line) and "://" not in line:
            out.notes.append(f"{where}: {short(line, 80)!r} applies to some tox environments only; skipped")
            continue
        if m := _INCLUDE.match(line):
            rel = m.group("path").replace("{toxinidir}/", "")
            if "{" in rel:
                out.notes.append(f"{where}: {short(line, 80)!r} uses a tox placeholder; skipped")
                continue
            try:
                rf = read_requirement_file(tree, rel) if not rel.startswith("/") and ".." not in rel.split("/") \
                    else None
            except DeclarationError as exc:
                out.notes.append(f"{where}: -r {rel}: {exc}")
                continue
            if rf is None:
                out.notes.append(f"{where}: -r {short(rel, 80)!r} leaves the project tree; refused")
                continue
            out.notes.extend(rf.notes)
            out.parts.append(Part(f"{TOX_INI} [testenv] deps -r {rel}", tuple(rf.requirements)))
            continue
        if "{" in line:
            out.notes.append(f"{where}: {short(line, 80)!r} uses a tox placeholder; skipped")
            continue
        if line.startswith("-"):
            out.notes.append(f"{where}: option {short(line, 60)!r} ignored")
            continue
        if isinstance(parse_requirement(line), str) and ("/" in line or line.startswith(".")):
            out.notes.append(f"{where}: {short(line, 80)!r} is a local path or URL; ignored")
            continue
        reqs.append(line)
    if reqs:
        out.parts.insert(0, Part(where, tuple(reqs)))
    return out
