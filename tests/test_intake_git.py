"""Git sources: cloned with everything that can run code switched off, never checked out."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from noa_core.errors import BadInput, HostileInput, LimitExceeded
from noa_core.intake import NetworkError, SourceSpec, parse_source

try:
    from tests.intake_helpers import commit_files, fetched_ok, git, limits, make_repo, refused, tree_files
except ImportError:  # tests/ not importable as a package
    from intake_helpers import commit_files, fetched_ok, git, limits, make_repo, refused, tree_files


# ------------------------------------------------------------------------ positive
def test_local_repo(tmp_path: Path) -> None:
    repo = tmp_path / "service"
    root1 = make_repo(repo, {"app/main.py": "print('v1')\n", "README.md": "hi\n"})
    (repo / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "run.sh", 0o755)
    commit_files(repo, {"app/main.py": "print('v2')\n"}, "second")
    # a second, unrelated history merged in: two root commits
    git("checkout", "-q", "--orphan", "other", cwd=repo)
    git("rm", "-rq", "--cached", ".", cwd=repo)
    for p in ("app", "README.md", "run.sh"):
        target = repo / p
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    root2 = commit_files(repo, {"docs/guide.md": "guide\n"}, "other root")
    git("checkout", "-q", "-f", "main", cwd=repo)
    git("merge", "-q", "--allow-unrelated-histories", "-m", "merge", "other", cwd=repo)
    head = git("rev-parse", "HEAD", cwd=repo)

    spec = parse_source(str(repo))
    assert spec == SourceSpec("git", str(repo))
    dest = tmp_path / "drops" / "d"
    res = fetched_ok(spec, dest, limits(), tmp_path)
    assert res.head_commit == head
    assert sorted(res.root_commits) == sorted([root1, root2])
    assert res.name_hint == "service"
    assert tree_files(dest) == {
        "app/main.py": b"print('v2')\n",
        "README.md": b"hi\n",
        "run.sh": b"#!/bin/sh\n",
        "docs/guide.md": b"guide\n",
    }
    assert not (dest / ".git").exists()
    assert stat.S_IMODE((dest / "run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "README.md").stat().st_mode) == 0o644
    assert res.files_total == 4
    assert res.bytes_total == len("print('v2')\n") + 3 + 10 + 6
    assert res.meta["head_ref"] == "refs/heads/main"
    assert res.meta["commit_count"] == 4
    assert res.meta["shallow"] is False


def test_file_url_and_bare_repo(tmp_path: Path) -> None:
    repo = tmp_path / "lib"
    first = make_repo(repo, {"lib.py": "x = 1\n"})
    spec = parse_source(f"file://{repo}")
    assert spec.kind == "git"
    res = fetched_ok(spec, tmp_path / "d1", limits(), tmp_path)
    assert res.head_commit == first and res.root_commits == (first,)
    assert tree_files(res.tree) == {"lib.py": b"x = 1\n"}

    bare = tmp_path / "lib-mirror.git"
    git("clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)
    spec = parse_source(str(bare))
    assert spec.kind == "git"
    res = fetched_ok(spec, tmp_path / "d2", limits(), tmp_path)
    assert res.head_commit == first
    assert res.name_hint == "lib-mirror"
    assert tree_files(res.tree) == {"lib.py": b"x = 1\n"}


def test_hostile_hooks_fsmonitor_and_filters_never_run(tmp_path: Path) -> None:
    repo = tmp_path / "hostile"
    make_repo(repo, {"data.txt": "raw blob\n", ".gitattributes": "*.txt filter=evil\n", "keep.py": "ok\n"})
    markers = {k: tmp_path / f"marker_{k}" for k in ("hook", "fsmonitor", "filter", "packhook")}
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(f"#!/bin/sh\ntouch {markers['hook']}\n")
    hook.chmod(0o755)
    packhook = tmp_path / "packhook.sh"
    packhook.write_text(f"#!/bin/sh\ntouch {markers['packhook']}\nexec \"$@\"\n")
    packhook.chmod(0o755)
    with open(repo / ".git" / "config", "a") as cfg:
        cfg.write(f"[core]\n\tfsmonitor = \"touch {markers['fsmonitor']}; false\"\n"
                  f"[filter \"evil\"]\n\tclean = \"touch {markers['filter']}; cat\"\n"
                  f"\tsmudge = \"touch {markers['filter']}; cat\"\n"
                  f"[uploadpack]\n\tpackObjectsHook = {packhook}\n")

    # Control: running git *inside* a copy of this repository fires every payload.
    control = tmp_path / "control"
    shutil.copytree(repo, control, symlinks=True)
    git("status", "--porcelain", cwd=control)
    (control / "data.txt").unlink()
    git("checkout", "-q", "--", "data.txt", cwd=control)
    git("checkout", "-q", "-b", "other", cwd=control)
    for name in ("hook", "fsmonitor", "filter"):
        assert markers[name].exists(), f"control: {name} payload did not fire"
        markers[name].unlink()
    shutil.rmtree(control)

    # By default such a repository is refused, naming what it carries, and nothing runs.
    err = refused(parse_source(str(repo)), tmp_path / "drop", limits(), HostileInput, "core.fsmonitor", tmp_path)
    assert "filter.evil.clean" in str(err) and "post-checkout" in str(err)
    for name, marker in markers.items():
        assert not marker.exists(), f"{name} payload ran while refusing"

    # Accepted on request: the clone still runs none of it.
    res = fetched_ok(parse_source(str(repo)), tmp_path / "drop", limits(refuse_repo_code=False), tmp_path)
    for name, marker in markers.items():
        assert not marker.exists(), f"{name} payload ran during fetch"
    assert tree_files(res.tree) == {"data.txt": b"raw blob\n", ".gitattributes": b"*.txt filter=evil\n",
                                    "keep.py": b"ok\n"}
    assert res.meta["git_special_files"] == [".gitattributes"]


def test_committed_symlink_refused(tmp_path: Path) -> None:
    repo = tmp_path / "links"
    make_repo(repo, {"a.txt": "a\n"})
    os.symlink("/etc/passwd", repo / "passwd")
    commit_files(repo, {}, "add symlink")
    assert "120000" in git("ls-tree", "HEAD", "passwd", cwd=repo)
    err = refused(parse_source(str(repo)), tmp_path / "out", limits(), HostileInput, "'passwd'", tmp_path)
    assert "symlinks are not accepted" in str(err)


def test_ext_submodule_refused_and_not_run(tmp_path: Path) -> None:
    repo = tmp_path / "withsub"
    marker = tmp_path / "marker_ext"
    first = make_repo(repo, {
        "main.py": "pass\n",
        ".gitmodules": f'[submodule "evil"]\n\tpath = evil\n\turl = ext::sh -c touch% {marker}\n',
    })
    git("update-index", "--add", "--cacheinfo", f"160000,{first},evil", cwd=repo)
    git("commit", "-q", "-m", "add submodule", cwd=repo)
    err = refused(parse_source(str(repo)), tmp_path / "out", limits(), HostileInput, "'evil'", tmp_path)
    assert "submodules" in str(err)
    assert not marker.exists()


def test_tree_with_dotgit_entry_refused(tmp_path: Path) -> None:
    """A tree carrying '.git/hooks/post-checkout' (CVE-2014-9390 style) is rejected by fsck."""
    repo = tmp_path / "dotgit"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    marker = tmp_path / "marker_dotgit"

    blob = git("hash-object", "-w", "--stdin", cwd=repo, input=f"#!/bin/sh\ntouch {marker}\n")
    hooks = git("mktree", cwd=repo, input=f"100755 blob {blob}\tpost-checkout\n")
    dotgit = git("mktree", cwd=repo, input=f"040000 tree {hooks}\thooks\n")
    top = git("mktree", cwd=repo, input=f"040000 tree {dotgit}\t.git\n100644 blob {blob}\tok.txt\n")
    commit = git("commit-tree", "-m", "evil", top, cwd=repo)
    git("update-ref", "refs/heads/main", commit, cwd=repo)
    err = refused(parse_source(str(repo)), tmp_path / "out", limits(), HostileInput, ".git", tmp_path)
    assert "fsck" in str(err)
    assert not marker.exists()


def test_ext_transport_location_refused(tmp_path: Path) -> None:
    marker = tmp_path / "marker_transport"
    spec = SourceSpec("git", f"ext::sh -c touch% {marker}")
    refused(spec, tmp_path / "out", limits(), BadInput, "ext::sh", tmp_path)
    assert not marker.exists()
    with pytest.raises(BadInput):
        parse_source(f"ext::sh -c touch% {marker}")


@pytest.mark.parametrize("location", ["http://example.invalid/repo.git", "ssh://git@example.invalid/r.git",
                                      "git://example.invalid/r.git", "relative/path"])
def test_other_transports_refused(tmp_path: Path, location: str) -> None:
    refused(SourceSpec("git", location), tmp_path / "out", limits(), BadInput, location, tmp_path)


def test_blob_over_max_file_bytes(tmp_path: Path) -> None:
    repo = tmp_path / "big"
    make_repo(repo, {"small.txt": "s\n", "assets/huge.bin": os.urandom(20_000)})
    err = refused(parse_source(str(repo)), tmp_path / "out", limits(max_file_bytes=10_000), LimitExceeded,
                  "'assets/huge.bin'", tmp_path)
    assert "max_file_bytes" in str(err)


def test_too_many_files(tmp_path: Path) -> None:
    repo = tmp_path / "many"
    make_repo(repo, {f"m/f{i:02d}.txt": f"{i}\n" for i in range(25)})
    err = refused(parse_source(str(repo)), tmp_path / "out", limits(max_files=10), LimitExceeded, "'m/f10.txt'",
                  tmp_path)
    assert "max_files" in str(err)


def test_total_size_limit(tmp_path: Path) -> None:
    repo = tmp_path / "total"
    make_repo(repo, {f"f{i}.bin": os.urandom(4000) for i in range(5)})
    refused(parse_source(str(repo)), tmp_path / "out", limits(max_total_bytes=10_000), LimitExceeded,
            "max_total_bytes", tmp_path)


def test_repo_size_limit(tmp_path: Path) -> None:
    repo = tmp_path / "heavy"
    make_repo(repo, {"blob.bin": os.urandom(200_000)})
    commit_files(repo, {"blob.bin": b"small now"}, "shrink")  # HEAD is small, history is not
    refused(parse_source(str(repo)), tmp_path / "out", limits(max_repo_bytes=100_000), LimitExceeded,
            "max_repo_bytes", tmp_path)


def test_empty_repo_refused(tmp_path: Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    refused(parse_source(str(repo)), tmp_path / "out", limits(), BadInput, "no commit", tmp_path)


def test_missing_repo_refused(tmp_path: Path) -> None:
    refused(SourceSpec("git", f"file://{tmp_path}/nowhere"), tmp_path / "out", limits(), BadInput, "nowhere",
            tmp_path)


# ----------------------------------------------------------------------- https
def _self_signed_cert(directory: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_clone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full clone over https (git's "dumb" HTTP protocol from a local TLS file server)."""
    pytest.importorskip("cryptography")
    import functools
    import ssl
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    work = make_repo(tmp_path / "src", {"pkg/mod.py": "A = 1\n"})
    head = commit_files(tmp_path / "src", {"pkg/mod.py": "A = 2\n"}, "second")
    served = tmp_path / "srv"
    served.mkdir()
    git("clone", "-q", "--bare", str(tmp_path / "src"), str(served / "proj.git"), cwd=tmp_path)
    git("update-server-info", cwd=served / "proj.git")
    cert, key = _self_signed_cert(tmp_path)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(served)))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("GIT_SSL_CAINFO", str(cert))
        url = f"https://127.0.0.1:{server.server_address[1]}/proj.git"
        spec = parse_source(url)
        assert spec == SourceSpec("git", url)
        res = fetched_ok(spec, tmp_path / "drop", limits(fetch_timeout_s=60), tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert res.head_commit == head
    assert res.root_commits == (work,)
    assert res.name_hint == "proj"
    assert tree_files(res.tree) == {"pkg/mod.py": b"A = 2\n"}


def test_unresolvable_https_host_is_network_error(tmp_path: Path) -> None:
    refused(SourceSpec("git", "https://repo.invalid/org/x.git"), tmp_path / "out", limits(fetch_timeout_s=30),
            NetworkError, "repo.invalid", tmp_path)


def test_shallow_source_has_unknown_roots(tmp_path: Path) -> None:
    repo = tmp_path / "full"
    make_repo(repo, {"a.txt": "1\n"})
    head = commit_files(repo, {"a.txt": "2\n"}, "second")
    shallow = tmp_path / "shallow"
    git("clone", "-q", "--depth=1", f"file://{repo}", str(shallow), cwd=tmp_path)
    res = fetched_ok(parse_source(str(shallow)), tmp_path / "out", limits(), tmp_path)
    assert res.head_commit == head
    assert res.meta["shallow"] is True
    assert res.root_commits == ()
    assert tree_files(res.tree) == {"a.txt": b"2\n"}
