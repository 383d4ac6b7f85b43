"""Projects written on the fly for the swarm tests (no tests in this module)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

SDIST_CACHE = Path(os.environ.get("NOA_TEST_SDIST_CACHE") or Path.home() / ".cache" / "noa-test-sdists")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
    return root


# Six test files of different weights, plus one skipped as a whole at collection:
# by test count the "many" files are heavy; by time the sleeping ones are.
# 1 test fails on purpose, 1 is skipped, 1 xfails, 3 subtests pass.
SHARD_PROJECT = {
    "pyproject.toml": """
        [project]
        name = "shardme"
        version = "0.1"
    """,
    "shardme/__init__.py": """
        def add(a, b):
            return a + b
    """,
    "tests/conftest.py": """
        import pytest

        @pytest.fixture
        def two():
            return 2
    """,
    "tests/test_slow.py": """
        import time

        def test_slow():
            time.sleep(0.9)
    """,
    "tests/test_mid.py": """
        import time

        def test_mid_one():
            time.sleep(0.3)

        def test_mid_two(two):
            time.sleep(0.3)
            assert two == 2
    """,
    "tests/test_many.py": """
        import pytest
        from shardme import add

        @pytest.mark.parametrize("n", range(12))
        def test_add(n):
            assert add(n, 0) == n
    """,
    "tests/test_params.py": """
        import pytest

        @pytest.mark.parametrize("x", ["a b", "c::d", "e[f]", "g", "h", "i", "j", "k", "l", "m"])
        def test_ids(x):
            assert x

        @pytest.mark.skip(reason="not today")
        def test_skipped():
            pass

        @pytest.mark.xfail(reason="known")
        def test_xfail():
            assert False
    """,
    "tests/test_sub.py": """
        def test_sub(subtests):
            for i in range(3):
                with subtests.test(i=i):
                    assert i < 5
    """,
    "tests/test_fail.py": """
        def test_ok():
            assert True

        def test_broken():
            assert 1 + 1 == 3
    """,
    "tests/test_skipmod.py": """
        import pytest

        pytest.skip("whole module skipped", allow_module_level=True)

        def test_never():
            pass
    """,
}

#: the same without its failing file: no failure, so no re-run
SHARD_PROJECT_GREEN = {k: v for k, v in SHARD_PROJECT.items() if k != "tests/test_fail.py"}

# test_c_consumer passes only when test_a_provider's module was imported first, as in a
# whole run (collection imports every module before any test runs).
ORDER_PROJECT = {
    "tests/test_a_provider.py": """
        import sys
        import types

        import pytest

        sys.modules.setdefault("noa_order_flag", types.ModuleType("noa_order_flag"))


        @pytest.mark.parametrize("i", range(10))
        def test_a(i):
            assert i >= 0
    """,
    "tests/test_b_heavy.py": """
        import pytest


        @pytest.mark.parametrize("i", range(10))
        def test_b(i):
            assert i >= 0
    """,
    "tests/test_c_consumer.py": """
        import sys


        def test_needs_provider():
            assert "noa_order_flag" in sys.modules
    """,
    "tests/test_d_mid.py": """
        import pytest


        @pytest.mark.parametrize("i", range(5))
        def test_d(i):
            assert i >= 0
    """,
}

# A test that fails unless node ids were given on the command line, as NOA's re-run of
# failures does: deterministic "failed, then passed on identical content".
FLAKY_PROJECT = {
    "tests/test_flaky.py": """
        import sys

        def test_stable():
            assert True

        def test_flaky():
            assert any("::" in a for a in sys.argv), "fails on a whole run, passes on a re-run by node id"
    """,
}

TINY_PY = {
    "calc.py": """
        def mul(a, b):
            return a * b
    """,
    "tests/test_calc.py": """
        from calc import mul


        def test_mul():
            assert mul(2, 3) == 6

        def test_mul_zero():
            assert mul(0, 3) == 0
    """,
    "tests/test_more.py": """
        from calc import mul


        def test_mul_one():
            assert mul(1, 7) == 7
    """,
}

TINY_CRATE = {
    "Cargo.toml": """
        [package]
        name = "tinycrate"
        version = "0.1.0"
        edition = "2021"

        [dependencies]
    """,
    "src/lib.rs": """
        pub fn add(a: i64, b: i64) -> i64 {
            a + b
        }

        #[cfg(test)]
        mod tests {
            use super::*;

            #[test]
            fn adds() {
                assert_eq!(add(2, 2), 4);
            }

            #[test]
            fn adds_negative() {
                assert_eq!(add(-2, 2), 0);
            }

            #[test]
            #[ignore]
            fn slow() {}
        }
    """,
}

TINY_GO = {
    "go.mod": """
        module example.com/tinygo

        go 1.19
    """,
    "tiny.go": """
        package tinygo

        func Add(a, b int) int { return a + b }
    """,
    "tiny_test.go": """
        package tinygo

        import "testing"

        func TestAdd(t *testing.T) {
            if Add(2, 2) != 4 {
                t.Fatal("2+2")
            }
            t.Run("negative", func(t *testing.T) {
                if Add(-1, 1) != 0 {
                    t.Fatal("-1+1")
                }
            })
        }

        func BenchmarkAdd(b *testing.B) {
            for i := 0; i < b.N; i++ {
                Add(i, i)
            }
        }
    """,
}


def sdist_tree(name: str, version: str, dest: Path) -> Path:
    """A real sdist from PyPI (downloaded once into the shared cache), extracted under ``dest``."""
    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    archive = SDIST_CACHE / f"{name}-{version}.tar.gz"
    with open(SDIST_CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not archive.exists():
            proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
                                   f"{name}=={version}", "-d", str(SDIST_CACHE)],
                                  capture_output=True, text=True, timeout=600)
            if proc.returncode != 0 or not archive.exists():
                pytest.fail(f"pip download {name}=={version} failed:\n{proc.stderr[-1500:]}")
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")
    (tree,) = [p for p in dest.iterdir() if p.is_dir()]
    return tree
