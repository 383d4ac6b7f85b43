"""Licence identification: text fingerprints, metadata aliases, categories.

Identifiers are SPDX ids. Where the evidence only names a family (the classifier
``License :: OSI Approved :: BSD License``, or a GPL text, which cannot say "only" or
"or later"), a *generic* id is used (``BSD``, ``Apache``, ``GPL-3.0``): it is
compatible with every more specific id of the family (:func:`compatible`) and is
never reported as an exact SPDX id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from packaging.licenses import InvalidLicenseExpression, canonicalize_license_expression

Category = Literal["permissive", "weak-copyleft", "copyleft", "proprietary", "unknown"]


def normalize(text: str) -> str:
    """Lower case, words only: punctuation, markup and line breaks do not matter."""
    text = text.lower().replace("and/or", "and or")
    return " ".join(re.findall(r"[a-z0-9]+", text))


@dataclass(frozen=True)
class Fingerprint:
    spdx: str
    all_of: tuple[str, ...]
    any_of: tuple[str, ...] = ()
    none_of: tuple[str, ...] = ()


_REDIST = "redistribution and use in source and binary forms with or without modification are permitted"
_ENDORSE = ("to endorse or promote products derived from this software",
            "may not be used to endorse")
_MIT = "permission is hereby granted free of charge to any person obtaining a copy"
_MIT_NOTICE = "the above copyright notice and this permission notice shall be included"
_ISC = "distribute this software for any purpose with or without fee is hereby granted"
_ISC_NOTICE = "provided that the above copyright notice and this permission notice appear in all copies"

# Characteristic phrases (normalized) of each licence text; the earliest match in a
# file is its licence.
FINGERPRINTS: tuple[Fingerprint, ...] = (
    Fingerprint("AGPL-3.0", ("gnu affero general public license version 3",)),
    Fingerprint("LGPL-3.0", ("gnu lesser general public license version 3",)),
    Fingerprint("LGPL-2.1", ("gnu lesser general public license version 2 1",)),
    Fingerprint("LGPL-2.0", ("gnu library general public license version 2",)),
    Fingerprint("GPL-3.0", ("gnu general public license version 3 29 june 2007",)),
    Fingerprint("GPL-2.0", ("gnu general public license version 2 june 1991",)),
    Fingerprint("GPL-3.0-or-later", ("gnu general public license as published by the free software "
                                     "foundation either version 3 of the license or",)),
    Fingerprint("GPL-2.0-or-later", ("gnu general public license as published by the free software "
                                     "foundation either version 2 of the license or",)),
    Fingerprint("LGPL-3.0-or-later", ("gnu lesser general public license as published by the free "
                                      "software foundation either version 3 of the license or",)),
    Fingerprint("LGPL-2.1-or-later", ("gnu lesser general public license as published by the free "
                                      "software foundation either version 2 1 of the license or",)),
    Fingerprint("Apache-2.0", ("apache license version 2 0",)),
    Fingerprint("Apache-2.0", ("licensed under the apache license version 2 0",)),
    Fingerprint("MPL-2.0", ("mozilla public license version 2 0",)),
    Fingerprint("MPL-1.1", ("mozilla public license version 1 1",)),
    Fingerprint("EPL-2.0", ("eclipse public license v 2 0",)),
    Fingerprint("EPL-1.0", ("eclipse public license v 1 0",)),
    Fingerprint("BSL-1.0", ("boost software license version 1 0",)),
    Fingerprint("PSF-2.0", ("python software foundation license version 2",)),
    Fingerprint("MIT", (_MIT, _MIT_NOTICE)),
    Fingerprint("MIT-0", (_MIT,), none_of=(_MIT_NOTICE,)),
    Fingerprint("ISC", (_ISC, _ISC_NOTICE)),
    Fingerprint("0BSD", (_ISC,), none_of=(_ISC_NOTICE,)),
    Fingerprint("BSD-4-Clause", (_REDIST, "all advertising materials mentioning features or use of "
                                          "this software")),
    Fingerprint("BSD-3-Clause", (_REDIST,), any_of=_ENDORSE,
                none_of=("all advertising materials mentioning features",)),
    Fingerprint("BSD-2-Clause", (_REDIST,), none_of=(*_ENDORSE, "all advertising materials")),
    Fingerprint("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    Fingerprint("CC0-1.0", ("cc0 1 0 universal",)),
    Fingerprint("Zlib", ("altered source versions must be plainly marked as such",
                         "this notice may not be removed or altered from any source distribution")),
    Fingerprint("WTFPL", ("do what the fuck you want to public license",)),
    Fingerprint("Artistic-2.0", ("the artistic license 2 0",)),
)


def identify_text(text: str) -> list[str]:
    """SPDX ids whose fingerprint is in ``text``, the earliest in the text first."""
    norm = normalize(text)
    hits: list[tuple[int, str]] = []
    for fp in FINGERPRINTS:
        positions = [norm.find(p) for p in fp.all_of]
        if min(positions) < 0:
            continue
        if fp.any_of and not any(p in norm for p in fp.any_of):
            continue
        if any(p in norm for p in fp.none_of):
            continue
        hits.append((min(positions), fp.spdx))
    ordered: list[str] = []
    for _, spdx in sorted(hits):
        if spdx not in ordered and not any(compatible(spdx, o) for o in ordered):
            ordered.append(spdx)
    return ordered


# -- metadata ---------------------------------------------------------------------

CLASSIFIERS: dict[str, str] = {
    "MIT License": "MIT", "MIT No Attribution License (MIT-0)": "MIT-0",
    "BSD License": "BSD", "Apache Software License": "Apache", "ISC License (ISCL)": "ISC",
    "GNU General Public License (GPL)": "GPL",
    "GNU General Public License v2 (GPLv2)": "GPL-2.0",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 (GPLv3)": "GPL-3.0",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0",
    "GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Library or Lesser General Public License (LGPL)": "LGPL",
    "GNU Affero General Public License v3": "AGPL-3.0",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0", "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "The Unlicense (Unlicense)": "Unlicense",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
    "Python Software Foundation License": "PSF-2.0", "zlib/libpng License": "Zlib",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0", "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Other/Proprietary License": "LicenseRef-Proprietary",
}

# Free-text licence names seen in metadata (normalized) -> id.
ALIASES: dict[str, str] = {
    "mit license": "MIT", "the mit license": "MIT", "mit": "MIT", "expat": "MIT",
    "bsd": "BSD", "bsd license": "BSD", "new bsd": "BSD-3-Clause", "new bsd license": "BSD-3-Clause",
    "modified bsd": "BSD-3-Clause", "revised bsd": "BSD-3-Clause", "bsd 3 clause": "BSD-3-Clause",
    "3 clause bsd": "BSD-3-Clause", "bsd 3": "BSD-3-Clause", "simplified bsd": "BSD-2-Clause",
    "bsd 2 clause": "BSD-2-Clause", "2 clause bsd": "BSD-2-Clause",
    "apache": "Apache", "apache 2": "Apache-2.0", "apache 2 0": "Apache-2.0",
    "apache license 2 0": "Apache-2.0", "apache license version 2 0": "Apache-2.0",
    "apache software license": "Apache", "apache software license 2 0": "Apache-2.0", "asl 2 0": "Apache-2.0",
    "gpl": "GPL", "gplv2": "GPL-2.0", "gplv2+": "GPL-2.0-or-later", "gpl 2": "GPL-2.0",
    "gplv3": "GPL-3.0", "gpl 3": "GPL-3.0", "gnu gpl v3": "GPL-3.0", "gpl v3": "GPL-3.0",
    "lgpl": "LGPL", "lgplv3": "LGPL-3.0", "lgplv2": "LGPL-2.0", "lgpl v3": "LGPL-3.0",
    "mpl 2 0": "MPL-2.0", "mozilla public license 2 0": "MPL-2.0",
    "isc": "ISC", "isc license": "ISC", "unlicense": "Unlicense", "the unlicense": "Unlicense",
    "psf": "PSF-2.0", "psf license": "PSF-2.0", "python software foundation license": "PSF-2.0",
    "zlib": "Zlib", "boost": "BSL-1.0", "proprietary": "LicenseRef-Proprietary",
}

GENERIC = frozenset({"BSD", "Apache", "GPL", "LGPL", "AGPL", "MPL", "GPL-2.0", "GPL-3.0",
                     "LGPL-2.0", "LGPL-2.1", "LGPL-3.0", "AGPL-3.0"})


def from_classifier(classifier: str) -> str | None:
    parts = [p.strip() for p in classifier.split("::")]
    if not parts or parts[0] != "License":
        return None
    return CLASSIFIERS.get(parts[-1])


def from_metadata_text(value: str) -> str | None:
    """An SPDX expression or a well-known licence name -> expression / id (None if unknown)."""
    value = value.strip()
    if not value or value.upper() in ("UNKNOWN", "NONE"):
        return None
    plus = value.endswith("+")
    alias = ALIASES.get(normalize(value) + ("+" if plus else ""))
    if alias:
        return alias
    if len(value) < 200:
        try:
            return canonicalize_license_expression(value)
        except (InvalidLicenseExpression, ValueError):
            pass
    ids = identify_text(value)
    return ids[0] if ids else None


def ids_in(expression: str) -> list[str]:
    """The licence ids named in an SPDX expression."""
    tokens = re.findall(r"[A-Za-z0-9.+:-]+", expression)
    out: list[str] = []
    skip = False
    for token in tokens:
        if token in ("AND", "OR"):
            continue
        if token == "WITH":
            skip = True
            continue
        if skip:
            skip = False
            continue
        token = token[:-1] + "-or-later" if token.endswith("+") else token
        out.append(token)
    return out


def compatible(a: str, b: str) -> bool:
    """Same licence, or one is the generic form of the other (``BSD`` ~ ``BSD-3-Clause``)."""
    a, b = _canon(a), _canon(b)
    return a == b or b.startswith(a + "-") or a.startswith(b + "-")


def _canon(spdx: str) -> str:
    return spdx[:-len("-only")] if spdx.endswith("-only") else spdx


def is_exact(spdx: str) -> bool:
    return not any(i in GENERIC for i in ids_in(spdx))


_PERMISSIVE = ("MIT", "BSD", "Apache", "ISC", "0BSD", "Unlicense", "CC0", "Zlib", "BSL", "PSF",
               "WTFPL", "Python", "X11", "Artistic", "NCSA", "Unicode", "HPND", "Beerware")
_WEAK = ("LGPL", "MPL", "EPL", "CDDL", "CPL")
_STRONG = ("GPL", "AGPL", "OSL", "EUPL", "SSPL")
_ORDER: dict[Category, int] = {"permissive": 0, "weak-copyleft": 1, "copyleft": 2,
                               "proprietary": 3, "unknown": 4}


def category_of_id(spdx: str) -> Category:
    if spdx.startswith("LicenseRef-Proprietary"):
        return "proprietary"
    for prefixes, cat in ((_WEAK, "weak-copyleft"), (_STRONG, "copyleft"), (_PERMISSIVE, "permissive")):
        if any(spdx == p or spdx.startswith(p + "-") for p in prefixes):
            return cat  # type: ignore[return-value]
    return "unknown"


def category(expression: str) -> Category:
    """Licence category of an expression: the freest choice for OR, the strictest for AND."""
    cats = [category_of_id(i) for i in ids_in(expression)]
    if not cats:
        return "unknown"
    if " OR " in expression and " AND " not in expression:
        return min(cats, key=_ORDER.__getitem__)
    return max(cats, key=_ORDER.__getitem__)
