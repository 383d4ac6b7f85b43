"""Archive sources: checked extraction of tar and zip drops."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake import SourceSpec, parse_source

try:
    from tests.intake_helpers import fetched_ok, limits, refused, tar_member, tree_files, write_tar, write_zip, zip_info
except ImportError:  # tests/ not importable as a package
    from intake_helpers import fetched_ok, limits, refused, tar_member, tree_files, write_tar, write_zip, zip_info


def spec_for(path: Path) -> SourceSpec:
    return SourceSpec("archive", str(path))


# ------------------------------------------------------------------------ positive
def test_tar_gz_is_extracted_with_top_dir_stripped(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "demo-service-1.4.2.tar.gz", [
        tar_member("demo-service-1.4.2/", type=tarfile.DIRTYPE, mode=0o755),
        tar_member("demo-service-1.4.2/pkg/__init__.py", b"VERSION = '1.4.2'\n"),
        tar_member("demo-service-1.4.2/bin/run", b"#!/bin/sh\necho hi\n", mode=0o4755),
        tar_member("demo-service-1.4.2/empty/", type=tarfile.DIRTYPE, mode=0o777),
        tar_member("./demo-service-1.4.2/README.md", b"# demo\n", mode=0o666),
    ])
    dest = tmp_path / "drops" / "d1"
    res = fetched_ok(parse_source(str(arc)), dest, limits(), tmp_path)
    assert res.spec.kind == "archive"
    assert res.name_hint == "demo-service"
    assert res.head_commit is None and res.root_commits == ()
    assert tree_files(dest) == {
        "pkg/__init__.py": b"VERSION = '1.4.2'\n",
        "bin/run": b"#!/bin/sh\necho hi\n",
        "README.md": b"# demo\n",
    }
    assert (dest / "empty").is_dir()
    assert res.files_total == 3
    assert res.bytes_total == sum(len(v) for v in tree_files(dest).values())
    assert res.meta["stripped_prefix"] == "demo-service-1.4.2"
    assert res.meta["format"] == "tar.gz"
    assert res.meta["archive_sha256"] == hashlib.sha256(arc.read_bytes()).hexdigest()
    # exact permissions: setuid dropped, world-writable dropped
    assert stat.S_IMODE((dest / "bin/run").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "empty").stat().st_mode) == 0o755


@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz"),
                                         (".tgz", "w:gz")])
def test_other_tar_flavours(tmp_path: Path, suffix: str, mode: str) -> None:
    arc = write_tar(tmp_path / f"thing{suffix}", [tar_member("a.txt", b"a"), tar_member("b/c.txt", b"c")],
                    mode=mode)
    dest = tmp_path / "out"
    res = fetched_ok(spec_for(arc), dest, limits(), tmp_path)
    assert tree_files(dest) == {"a.txt": b"a", "b/c.txt": b"c"}
    assert res.meta["stripped_prefix"] is None
    assert res.name_hint == "thing"


def test_zip_is_extracted(tmp_path: Path) -> None:
    arc = write_zip(tmp_path / "tool_x-0.3.zip", [
        ("tool_x-0.3/tool_x.py", b"print('x')\n" * 10),
        ("tool_x-0.3/data/", b""),
        (zip_info("tool_x-0.3/run.sh", 0o100755), b"#!/bin/sh\n"),
    ])
    dest = tmp_path / "out"
    res = fetched_ok(parse_source(str(arc)), dest, limits(), tmp_path)
    assert tree_files(dest) == {"tool_x.py": b"print('x')\n" * 10, "run.sh": b"#!/bin/sh\n"}
    assert (dest / "data").is_dir()
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "tool_x.py").stat().st_mode) == 0o644
    assert res.name_hint == "tool_x"
    assert res.meta["format"] == "zip"


def test_existing_empty_dest_is_filled(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "a.tar.gz", [tar_member("x.txt", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    res = fetched_ok(spec_for(arc), dest, limits(), tmp_path)
    assert tree_files(res.tree) == {"x.txt": b"x"}


def test_non_empty_dest_is_refused_and_untouched(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "a.tar.gz", [tar_member("x.txt", b"x")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(BadInput, match="not empty"):
        from noa_core.intake import fetch_source
        fetch_source(spec_for(arc), dest, limits())
    assert os.listdir(dest) == ["keep.txt"]
    assert sorted(os.listdir(tmp_path)) == ["a.tar.gz", "out"]


# ------------------------------------------------------------------ path attacks
def test_zip_slip_dotdot(tmp_path: Path) -> None:
    arc = write_zip(tmp_path / "slip.zip", [("ok.txt", b"fine"), ("../evil.txt", b"pwned")])
    out = tmp_path / "out"
    out.mkdir()
    dest = out / "drop"
    refused(spec_for(arc), dest, limits(), HostileInput, "'../evil.txt'", tmp_path)
    assert not (out / "evil.txt").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_tar_dotdot_member(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "slip.tar.gz", [tar_member("pkg/ok.txt", b"ok"),
                                               tar_member("pkg/../../tar_evil.txt", b"pwned")])
    dest = tmp_path / "out" / "drop"
    err = refused(spec_for(arc), dest, limits(), HostileInput, "pkg/../../tar_evil.txt", tmp_path)
    assert "escapes the drop" in str(err)
    assert not (tmp_path / "tar_evil.txt").exists()
    assert not (tmp_path / "out" / "tar_evil.txt").exists()


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_absolute_path_member(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "victim" / "abs_marker.txt"
    target.parent.mkdir()
    if kind == "tar":
        arc = write_tar(tmp_path / "abs.tar", [tar_member(str(target), b"pwned")], mode="w")
    else:
        arc = write_zip(tmp_path / "abs.zip", [(str(target), b"pwned")])
    refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, str(target), tmp_path)
    assert not target.exists()


@pytest.mark.parametrize("name,rule", [("dir\\..\\..\\evil.txt", "backslash"), ("C:/evil.txt", "drive letter"),
                                       ("pkg/.git/config", ".git"), ("bad\nname.txt", "control character")])
def test_odd_names_refused(tmp_path: Path, name: str, rule: str) -> None:
    arc = write_zip(tmp_path / "names.zip", [(name, b"x")])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "refused archive member", tmp_path)
    assert rule in str(err)


def test_duplicate_member_refused(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "dup.tar.gz", [tar_member("a/setup.py", b"good"), tar_member("a/./setup.py", b"evil")])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "a/./setup.py", tmp_path)
    assert "duplicate" in str(err)


def test_too_deep_path_refused(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 12) + "/f.txt"
    arc = write_tar(tmp_path / "deep.tar.gz", [tar_member(deep, b"x")])
    refused(spec_for(arc), tmp_path / "out", limits(max_path_depth=10), LimitExceeded, deep, tmp_path)


# ------------------------------------------------------------------ link attacks
def test_tar_absolute_symlink_refused(tmp_path: Path) -> None:
    victim_dir = tmp_path / "victim"
    victim_dir.mkdir()
    arc = write_tar(tmp_path / "link.tar.gz", [
        tar_member("escape", type=tarfile.SYMTYPE, linkname=str(victim_dir)),
        tar_member("escape/pwned.txt", b"pwned"),
    ])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "'escape'", tmp_path)
    assert "links are not accepted" in str(err)
    assert not (victim_dir / "pwned.txt").exists()


def test_tar_relative_escaping_symlink_refused(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "rel.tar", [
        tar_member("up", type=tarfile.SYMTYPE, linkname="../.."),
        tar_member("up/rel_pwned.txt", b"pwned"),
    ], mode="w")
    refused(spec_for(arc), tmp_path / "out" / "d", limits(), HostileInput, "'up'", tmp_path)
    assert not (tmp_path / "rel_pwned.txt").exists()


def test_tar_hardlink_to_etc_passwd_refused(tmp_path: Path) -> None:
    before = Path("/etc/passwd").read_bytes() if Path("/etc/passwd").exists() else None
    arc = write_tar(tmp_path / "hard.tar.gz", [tar_member("passwd", type=tarfile.LNKTYPE, linkname="/etc/passwd")])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "'passwd'", tmp_path)
    assert "/etc/passwd" in str(err) and "hard link" in str(err)
    if before is not None:
        assert Path("/etc/passwd").read_bytes() == before


def test_tar_hardlink_then_overwrite_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("original")
    arc = write_tar(tmp_path / "hard2.tar", [
        tar_member("s", type=tarfile.LNKTYPE, linkname=str(secret)),
        tar_member("s", b"overwritten through the link"),
    ], mode="w")
    refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "'s'", tmp_path)
    assert secret.read_text() == "original"


def test_zip_symlink_member_refused(tmp_path: Path) -> None:
    arc = write_zip(tmp_path / "link.zip", [(zip_info("lnk", 0o120777), b"/etc/passwd")])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "'lnk'", tmp_path)
    assert "links are not accepted" in str(err)


@pytest.mark.parametrize("mtype,label", [(tarfile.CHRTYPE, "character device"), (tarfile.BLKTYPE, "block device"),
                                         (tarfile.FIFOTYPE, "FIFO")])
def test_tar_device_member_refused(tmp_path: Path, mtype: bytes, label: str) -> None:
    arc = write_tar(tmp_path / "dev.tar.gz", [tar_member("dev/thing", type=mtype, devmajor=1, devminor=3)])
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "'dev/thing'", tmp_path)
    assert label in str(err)


# ------------------------------------------------------------------------- bombs
def test_zip_bomb_refused(tmp_path: Path) -> None:
    arc = write_zip(tmp_path / "bomb.zip", [("readme.txt", b"hello"), ("zeros.bin", bytes(4 * 1024 * 1024))])
    lim = limits(max_compression_ratio=20, ratio_grace_bytes=64 * 1024)
    err = refused(spec_for(arc), tmp_path / "out", lim, HostileInput, "'zeros.bin'", tmp_path)
    assert "max_compression_ratio" in str(err)


def test_zip_overall_ratio_refused(tmp_path: Path) -> None:
    # Each member alone is under the per-member grace, together they are not.
    members = [(f"z{i}.bin", bytes(60 * 1024)) for i in range(40)]
    arc = write_zip(tmp_path / "many.zip", members)
    lim = limits(max_compression_ratio=20, ratio_grace_bytes=64 * 1024)
    refused(spec_for(arc), tmp_path / "out", lim, HostileInput, "'many.zip'", tmp_path)


def test_tar_gz_bomb_stopped_early(tmp_path: Path) -> None:
    size = 16 * 1024 * 1024
    info = tarfile.TarInfo("zeros.bin")
    info.size = size
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w|") as tf:
        tf.addfile(info, io.BytesIO(bytes(size)))
    arc = tmp_path / "bomb.tar.gz"
    arc.write_bytes(gzip.compress(raw.getvalue(), compresslevel=9))
    assert arc.stat().st_size < 200 * 1024
    lim = limits(max_compression_ratio=50, ratio_grace_bytes=64 * 1024)
    t0 = time.monotonic()
    err = refused(spec_for(arc), tmp_path / "out", lim, HostileInput, "'bomb.tar.gz'", tmp_path)
    assert time.monotonic() - t0 < 5
    assert "decompresses to more than 50x" in str(err)


def test_tar_huge_pax_header_refused(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "pax.tar.gz", [tar_member("a.txt", b"x", pax_headers={"comment": "y" * 100_000})],
                    format=tarfile.PAX_FORMAT)
    refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "tar metadata record", tmp_path)


# -------------------------------------------------------------------------- limits
@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_member_over_max_file_bytes(tmp_path: Path, kind: str) -> None:
    blob = os.urandom(300 * 1024)
    if kind == "tar":
        arc = write_tar(tmp_path / "big.tar.gz", [tar_member("small.txt", b"s"), tar_member("big.bin", blob)])
    else:
        arc = write_zip(tmp_path / "big.zip", [("small.txt", b"s"), ("big.bin", blob)])
    err = refused(spec_for(arc), tmp_path / "out", limits(max_file_bytes=100 * 1024), LimitExceeded, "'big.bin'",
                  tmp_path)
    assert "max_file_bytes" in str(err)


def test_total_bytes_limit(tmp_path: Path) -> None:
    arc = write_tar(tmp_path / "total.tar", [tar_member(f"f{i}.bin", os.urandom(40_000)) for i in range(5)], mode="w")
    err = refused(spec_for(arc), tmp_path / "out", limits(max_total_bytes=100_000), LimitExceeded, "'f2.bin'",
                  tmp_path)
    assert "max_total_bytes" in str(err)


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_too_many_files(tmp_path: Path, kind: str) -> None:
    names = [f"pkg/m{i:02d}.py" for i in range(30)]
    if kind == "tar":
        arc = write_tar(tmp_path / "many.tar.gz", [tar_member(n, b"pass\n") for n in names])
    else:
        arc = write_zip(tmp_path / "many.zip", [(n, b"pass\n") for n in names])
    err = refused(spec_for(arc), tmp_path / "out", limits(max_files=10), LimitExceeded, "'pkg/m10.py'", tmp_path)
    assert "max_files" in str(err)


# ---------------------------------------------------------------------- bad input
def test_corrupt_archive(tmp_path: Path) -> None:
    arc = tmp_path / "broken.tar.gz"
    arc.write_bytes(gzip.compress(b"not a tar at all" * 100)[:-20])
    refused(spec_for(arc), tmp_path / "out", limits(), BadInput, "'broken.tar.gz'", tmp_path)


def test_zip_that_is_not_a_zip(tmp_path: Path) -> None:
    arc = tmp_path / "fake.zip"
    arc.write_bytes(b"PK but not really")
    refused(spec_for(arc), tmp_path / "out", limits(), BadInput, "'fake.zip'", tmp_path)


def test_missing_archive(tmp_path: Path) -> None:
    refused(spec_for(tmp_path / "nope.tar.gz"), tmp_path / "out", limits(), BadInput, "nope.tar.gz", tmp_path)


def test_encrypted_zip_member_refused(tmp_path: Path) -> None:
    arc = write_zip(tmp_path / "enc.zip", [("secret.txt", b"data")], compression=zipfile.ZIP_STORED)
    raw = bytearray(arc.read_bytes())
    # set the "encrypted" flag bit in the local and central headers
    for sig in (b"PK\x03\x04", b"PK\x01\x02"):
        i = raw.find(sig)
        off = i + (6 if sig == b"PK\x03\x04" else 8)
        raw[off] |= 0x1
    arc.write_bytes(bytes(raw))
    refused(spec_for(arc), tmp_path / "out", limits(), BadInput, "'secret.txt'", tmp_path)


def test_crafted_pax_header_refused_quickly(tmp_path: Path) -> None:
    # Short records without '=' make 3.11.7's pax regexes quadratic (CVE-2024-6232).
    body = b"6 aaaa" * 10_000 + b"=x\n"
    hdr = tarfile.TarInfo("././@PaxHeader")
    hdr.type = tarfile.XHDTYPE
    hdr.size = len(body)
    raw = io.BytesIO()
    raw.write(hdr.tobuf(tarfile.USTAR_FORMAT))
    raw.write(body + bytes(-len(body) % 512))
    raw.write(tarfile.TarInfo("a.txt").tobuf(tarfile.USTAR_FORMAT) + bytes(1024))
    arc = tmp_path / "redos.tar"
    arc.write_bytes(raw.getvalue())
    t0 = time.monotonic()
    err = refused(spec_for(arc), tmp_path / "out", limits(), HostileInput, "PaxHeader", tmp_path)
    assert time.monotonic() - t0 < 2
    assert "malformed pax header" in str(err)


def test_pax_archive_with_long_names_is_fine(tmp_path: Path) -> None:
    long_name = "pkg/" + "d" * 150 + "/" + "é" * 40 + ".py"
    arc = write_tar(tmp_path / "pax.tar.gz", [tar_member(long_name, b"x = 1\n", pax_headers={"comment": "ü" * 3000}),
                                              tar_member("setup.py", b"")], format=tarfile.PAX_FORMAT)
    res = fetched_ok(spec_for(arc), tmp_path / "out", limits(), tmp_path)
    assert tree_files(res.tree) == {long_name: b"x = 1\n", "setup.py": b""}


def test_gnu_long_names_are_fine(tmp_path: Path) -> None:
    long_name = "src/" + "n" * 200 + ".txt"
    arc = write_tar(tmp_path / "gnu.tar", [tar_member(long_name, b"gnu")], mode="w", format=tarfile.GNU_FORMAT)
    res = fetched_ok(spec_for(arc), tmp_path / "out", limits(), tmp_path)
    assert tree_files(res.tree) == {long_name[len("src/"):]: b"gnu"}  # single top-level dir stripped
    assert res.meta["stripped_prefix"] == "src"
