"""The licence of a tree, from its licence files and from its package metadata.

Licence files (LICENSE*, LICENCE*, COPYING*, UNLICENSE at the root, LICENSES/*, and
files named by pyproject ``license = {file=...}`` / ``license-files`` / Cargo
``license-file``) are matched against text fingerprints. Metadata: pyproject
``license`` (SPDX expression or table) and classifiers, PKG-INFO ``License-Expression``
/ ``License`` / classifiers, setup.cfg and a literal setup.py ``license=`` /
``classifiers=``, package.json ``license``, Cargo.toml ``license``.

When the sources disagree the result says so (``agree: false`` and a finding); the
licence file's text wins, since it is the legal text. No file and no metadata:
``unknown``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from noa_core.sourcetree import safe_fs
from noa_core.analysis import _manifests as m
from noa_core.analysis import _spdx
from noa_core.analysis.interface import AnalyzerResult, Finding

LICENCE_FILE = re.compile(r"^(un)?licen[cs]e([-._].*)?$|^copying([-._].*)?$|^copyright$",
                          re.IGNORECASE)
TEXT_LIMIT = 256 * 1024

Evidence = dict[str, Any]


class LicenceAnalyzer:
    name = "licence"
    version = "1"

    def analyze(self, tree: Path) -> AnalyzerResult:
        listing = safe_fs.walk(tree)
        problems: list[str] = []
        metadata: list[Evidence] = []
        named_files: list[str] = []
        self._pyproject(tree, metadata, named_files, problems)
        self._pkg_info(tree, metadata, problems)
        self._setup(tree, metadata, problems)
        self._package_json(tree, metadata, problems)
        self._cargo(tree, metadata, named_files, problems)

        files = self._files(tree, listing, named_files)
        recognised = [f for f in files if f["spdx"]]
        file_ids = [f["spdx"] for f in recognised]
        meta_known = [e for e in metadata if e["spdx"]]

        data: dict[str, Any] = {"spdx": None, "category": "unknown", "exact": False,
                                "files": files, "metadata": metadata, "agree": True}
        if not files and not metadata:
            return AnalyzerResult(self.name, "unknown", reason="no licence file or metadata",
                                  data=data)
        if not recognised and not meta_known:
            what = ", ".join(f["path"] for f in files) or ", ".join(e["source"] for e in metadata)
            return AnalyzerResult(self.name, "unknown",
                                  reason=f"licence not recognised in {what}", data=data)

        groups: list[tuple[str, list[str]]] = []
        if file_ids:
            groups.append(("licence files", file_ids))
        groups.extend((e["source"], _spdx.ids_in(e["spdx"])) for e in meta_known)
        conflicts = [(a, b) for i, (a, ids_a) in enumerate(groups) for (b, ids_b) in groups[i + 1:]
                     if not any(_spdx.compatible(x, y) for x in ids_a for y in ids_b)]
        spdx = self._choose(file_ids, meta_known, conflicts)
        data.update(spdx=spdx if _spdx.is_exact(spdx) else None, category=_spdx.category(spdx),
                    exact=_spdx.is_exact(spdx), agree=not conflicts)
        if not _spdx.is_exact(spdx):
            data["family"] = spdx
        findings: tuple[Finding, ...] = ()
        reasons: list[str] = []
        if conflicts:
            text = "; ".join(f"{a} vs {b}" for a, b in conflicts)
            reasons.append(f"licence sources disagree: {text}")
            findings = (Finding(self.name, "licence-mismatch", "medium",
                                f"licence sources disagree ({text}); the licence file is used"),)
        if files and not recognised:
            reasons.append("licence file text not recognised; metadata used")
        if not data["exact"]:
            reasons.append(f"only the licence family is known ({spdx})")
        if problems:
            reasons.extend(problems)
            return AnalyzerResult(self.name, "unknown", reason="; ".join(reasons), data=data,
                                  findings=findings)
        return AnalyzerResult(self.name, "ok", reason="; ".join(reasons), data=data,
                              findings=findings)

    @staticmethod
    def _choose(file_ids: list[str], meta: list[Evidence], conflicts: list[Any]) -> str:
        """Most precise expression consistent with the licence files."""
        def fits(expr: str) -> bool:
            return not file_ids or all(any(_spdx.compatible(f, i) for i in _spdx.ids_in(expr))
                                       for f in file_ids)
        exact_meta: list[str] = [e["spdx"] for e in meta
                                 if _spdx.is_exact(e["spdx"]) and fits(e["spdx"])]
        if exact_meta:
            return max(exact_meta, key=len)
        if file_ids:
            unique = sorted(set(file_ids), key=file_ids.index)
            if len(unique) == 1:
                # A generic file id (GPL text) made precise by a compatible metadata id.
                precise = [i for e in meta for i in _spdx.ids_in(e["spdx"])
                           if _spdx.compatible(unique[0], i) and _spdx.is_exact(i)]
                return max(precise, key=len) if precise else unique[0]
            return " AND ".join(unique)
        candidates: list[str] = [e["spdx"] for e in meta]
        return max(candidates, key=lambda s: (_spdx.is_exact(s), len(s)))

    # -- licence files ----------------------------------------------------------------

    @staticmethod
    def _files(tree: Path, listing: safe_fs.Listing, named: list[str]) -> list[Evidence]:
        candidates: list[str] = []
        for f in listing.source_files():
            at_root = len(f.parts) == 1 and LICENCE_FILE.match(f.name)
            reuse = len(f.parts) == 2 and f.parts[0] == "LICENSES"  # REUSE layout
            if at_root or reuse:
                candidates.append(f.rel)
        for rel in named:
            if rel not in candidates and safe_fs.is_regular(tree, rel):
                candidates.append(rel)
        out: list[Evidence] = []
        for rel in candidates:
            try:
                text = safe_fs.read_text(tree, rel, TEXT_LIMIT)
            except OSError:
                continue
            ids = _spdx.identify_text(text)
            entry: Evidence = {"path": rel, "spdx": ids[0] if ids else None}
            if len(ids) > 1:
                entry["also_mentions"] = ids[1:]
            out.append(entry)
        return out

    # -- metadata ---------------------------------------------------------------------

    @staticmethod
    def _add(metadata: list[Evidence], source: str, value: str, spdx: str | None) -> None:
        metadata.append({"source": source, "value": value[:200], "spdx": spdx})

    def _classifiers(self, metadata: list[Evidence], source: str, classifiers: Any) -> None:
        if not isinstance(classifiers, (list, tuple)):
            return
        for c in classifiers:
            if isinstance(c, str) and c.startswith("License ::"):
                spdx = _spdx.from_classifier(c)
                if spdx or c.split("::")[-1].strip() != "OSI Approved":
                    self._add(metadata, source, c, spdx)

    def _pyproject(self, tree: Path, metadata: list[Evidence], named: list[str],
                   problems: list[str]) -> None:
        if not m.exists(tree, "pyproject.toml"):
            return
        try:
            project = m.table(m.load_toml(tree, "pyproject.toml"), "project")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        lic = project.get("license")
        if isinstance(lic, str):
            self._add(metadata, "pyproject.toml license", lic, _spdx.from_metadata_text(lic))
        elif isinstance(lic, dict):
            if isinstance(lic.get("text"), str):
                self._add(metadata, "pyproject.toml license.text", lic["text"],
                          _spdx.from_metadata_text(lic["text"]))
            if isinstance(lic.get("file"), str):
                named.append(lic["file"].removeprefix("./"))
        files = project.get("license-files")
        if isinstance(files, list):
            named.extend(f for f in files if isinstance(f, str) and not any(c in f for c in "*?["))
        self._classifiers(metadata, "pyproject.toml classifiers", project.get("classifiers"))

    def _pkg_info(self, tree: Path, metadata: list[Evidence], problems: list[str]) -> None:
        if not m.exists(tree, "PKG-INFO"):
            return
        try:
            meta = m.load_pkg_info(tree)
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        expression = meta.get("License-Expression")
        if expression:
            self._add(metadata, "PKG-INFO License-Expression", expression,
                      _spdx.from_metadata_text(expression))
        elif meta.get("License"):
            self._add(metadata, "PKG-INFO License", meta["License"],
                      _spdx.from_metadata_text(meta["License"]))
        self._classifiers(metadata, "PKG-INFO classifiers", meta.get_all("Classifier") or [])

    def _setup(self, tree: Path, metadata: list[Evidence], problems: list[str]) -> None:
        if m.exists(tree, "setup.cfg"):
            try:
                cfg = m.load_ini(tree, "setup.cfg")
            except m.ManifestError as exc:
                problems.append(str(exc))
            else:
                for key in ("license_expression", "license"):
                    if cfg.has_option("metadata", key):
                        value = cfg.get("metadata", key)
                        self._add(metadata, f"setup.cfg {key}", value, _spdx.from_metadata_text(value))
                        break
                if cfg.has_option("metadata", "classifiers"):
                    self._classifiers(metadata, "setup.cfg classifiers",
                                      m.ini_list(cfg.get("metadata", "classifiers")))
        if m.exists(tree, "setup.py"):
            try:
                call = m.parse_setup_py(tree)
            except m.ManifestError:
                return  # not an error of the licence: a setup.py we cannot read says nothing
            lic = call.get("license")
            if isinstance(lic, str):
                self._add(metadata, "setup.py license", lic, _spdx.from_metadata_text(lic))
            self._classifiers(metadata, "setup.py classifiers", call.get("classifiers"))

    def _package_json(self, tree: Path, metadata: list[Evidence], problems: list[str]) -> None:
        if not m.exists(tree, "package.json"):
            return
        try:
            pkg = m.load_json(tree, "package.json")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        lic = pkg.get("license") if isinstance(pkg, dict) else None
        if isinstance(lic, dict):
            lic = lic.get("type")
        if isinstance(lic, str):
            spdx = None if lic.upper().startswith("SEE LICENSE") else _spdx.from_metadata_text(lic)
            self._add(metadata, "package.json license", lic, spdx)

    def _cargo(self, tree: Path, metadata: list[Evidence], named: list[str],
               problems: list[str]) -> None:
        if not m.exists(tree, "Cargo.toml"):
            return
        try:
            package = m.table(m.load_toml(tree, "Cargo.toml"), "package")
        except m.ManifestError as exc:
            problems.append(str(exc))
            return
        lic = package.get("license")
        if isinstance(lic, str):
            # Cargo accepts the old "MIT/Apache-2.0" form, meaning OR.
            expr = lic.replace("/", " OR ")
            self._add(metadata, "Cargo.toml license", lic, _spdx.from_metadata_text(expr))
        if isinstance(package.get("license-file"), str):
            named.append(package["license-file"].removeprefix("./"))
