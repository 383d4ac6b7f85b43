"""Is a file part of a test suite or its fixtures? Judged from its path alone.

Used where a finding means less in test code than in shipped code (the secrets policy:
an entropy hit in a test vector is informational). The answer is the rule that matched,
so a report can say why, e.g. ``"*_test.go"`` or ``"directory 'testdata/'"``; ``None``
means the path looks like shipped code.

Paths are relative, ``/``-separated, as the analyzers' tree walk gives them.
"""

from __future__ import annotations

import fnmatch
from pathlib import PurePosixPath

__all__ = ["TEST_DIRS", "TEST_FILE_PATTERNS", "why_test_file"]

#: Directory names (any level, compared lower-case) whose whole content is tests or fixtures.
TEST_DIRS: frozenset[str] = frozenset({
    "test", "tests", "testdata", "test_data", "testing_data", "fixtures", "fixture", "__tests__",
    "__fixtures__", "__mocks__", "__snapshots__", "spec", "specs", "testfixtures", "test-fixtures",
    "test-data",
})

#: File-name patterns of test modules, per ecosystem (matched case-sensitively on the name).
TEST_FILE_PATTERNS: tuple[str, ...] = (
    "*_test.go",                                    # Go
    "test_*.py", "*_test.py", "conftest.py",        # pytest, unittest
    "*.test.js", "*.test.mjs", "*.test.cjs", "*.test.jsx", "*.test.ts", "*.test.tsx",
    "*.spec.js", "*.spec.mjs", "*.spec.cjs", "*.spec.jsx", "*.spec.ts", "*.spec.tsx",  # jest, mocha, vitest
    "*_test.rs", "*_tests.rs",                      # Rust unit-test modules kept in their own file
    "*_spec.rb", "*_test.rb",                       # RSpec, minitest
    "*Test.java", "*Tests.java", "*Test.kt",        # JUnit
    "*_test.exs", "*_test.dart", "*Tests.cs", "*Test.php",
)


def why_test_file(rel: str) -> str | None:
    """The rule that makes ``rel`` a test or fixture file, or ``None``."""
    parts = PurePosixPath(rel).parts
    if not parts:
        return None
    for part in parts[:-1]:
        if part.lower() in TEST_DIRS:
            return f"directory '{part}/'"
    name = parts[-1]
    for pattern in TEST_FILE_PATTERNS:
        if fnmatch.fnmatchcase(name, pattern):
            return pattern
    return None

