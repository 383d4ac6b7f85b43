"""What the local LLM is shown about a drop (noa_core.analysis.llm.context_from_tree): its README
and a sample of its files, read without following links."""

from __future__ import annotations

from pathlib import Path

from noa_core.analysis.llm import context_from_tree


def test_the_model_sees_the_readme_and_a_file_sample_but_nothing_through_a_link(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# tiny\nA small library.\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tiny.py").write_text("x = 1\n")
    outside = tmp_path.parent / f"{tmp_path.name}-secret"
    outside.mkdir()
    (outside / "key.txt").write_text("not for the model\n")
    (tmp_path / "linked").symlink_to(outside, target_is_directory=True)
    ctx = context_from_tree(tmp_path, "tiny", False, {"python": 6})
    assert ctx.readme_excerpt.startswith("# tiny")
    assert ctx.file_sample == ("README.md", "src/tiny.py")
    assert ctx.languages == {"python": 6}
