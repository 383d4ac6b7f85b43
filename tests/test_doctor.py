"""``noa doctor``: the installed llama.cpp build stays within the portable baseline."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from noa_core.analysis.llm_build import (
    baseline_violations,
    installed_build_flags,
    installed_native_hashes,
)
from noa_core.analysis.llm_model import parse_system_info
from tests.llm_helpers import needs_ai


def noa(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "noa_core.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@needs_ai
def test_doctor_reports_a_portable_llama_cpp_build(tmp_path: Path) -> None:
    done = noa("doctor", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["python"] == sys.version.split()[0]
    assert report["noa_version"]
    assert report["isolation_backend"] in ("bwrap", "unshare", None)
    assert report["model_path"] and Path(report["model_path"]).is_file()
    features = report["llama_cpp"]["features"]
    assert features.get("AVX2") == "1"          # the x86-64-v3 baseline is compiled in
    enabled = {k for k, v in features.items() if v == "1"}
    assert not {k for k in enabled if k.upper().startswith("AVX512")}, features
    assert not {k for k in enabled if k.upper().startswith("AMX")}, features
    assert report["llama_cpp"]["use_extra_bufts"] is False
    flags = report["build_flags"]
    assert flags, "doctor found no BUILD_FLAGS for the installed llama-cpp-python wheel"
    assert "-DGGML_NATIVE=OFF" in flags.split() and "-DGGML_NATIVE=ON" not in flags and "-march=native" not in flags
    assert report["portable"] == {"ok": True, "violations": []}


@needs_ai
def test_doctor_text_output_and_no_llama_cpp_in_the_cli_process(tmp_path: Path) -> None:
    done = noa("doctor", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cpu features" in done.stdout and "AVX2 = 1" in done.stdout and "portable       yes" in done.stdout
    script = ("import sys\nfrom noa_core.cli.doctor_cmd import collect\n"
              "r = collect(None)\nassert r['llama_cpp']['features'], r\nprint('llama_cpp' in sys.modules)")
    probe = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, check=False)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "False"


def test_doctor_bad_model_path_is_one_error_line(tmp_path: Path) -> None:
    done = noa("doctor", "--model", str(tmp_path / "missing.gguf"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("noa: error: ") and done.stderr.count("\n") == 1


def test_baseline_violations_name_avx512_amx_and_native() -> None:
    amx_cpu = parse_system_info("CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 1 | AVX512_VNNI = 0 | AMX_INT8 = 1 | ")
    assert baseline_violations(amx_cpu, "-DGGML_NATIVE=ON") == [
        "AMX_INT8 = 1 (compiled in)", "AVX512 = 1 (compiled in)",
        "built without -DGGML_NATIVE=OFF (native CPU tuning)"]
    assert baseline_violations(amx_cpu | {"AMX_INT8": "0", "AVX512": "0"}, "-DGGML_NATIVE=OFF") == []
    assert "built with -march=native" in baseline_violations({}, "-DGGML_NATIVE=OFF -DCMAKE_C_FLAGS=-march=native")


@needs_ai
def test_a_cached_wheel_with_other_native_libraries_is_not_taken_for_the_installed_one(tmp_path: Path) -> None:
    installed = installed_native_hashes()
    assert installed
    folder = tmp_path / "noa-wheels" / "llama-0000"
    folder.mkdir(parents=True)
    (folder / "BUILD_FLAGS").write_text("-DGGML_NATIVE=ON\n")
    with zipfile.ZipFile(folder / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl", "w") as zf:
        record = "".join(f"{path},sha256=other,1\n" for path in installed)
        zf.writestr("llama_cpp_python-0.3.36.dist-info/RECORD", record)
    assert installed_build_flags(tmp_path / "noa-wheels") is None
    with zipfile.ZipFile(folder / "llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl", "w") as zf:
        zf.writestr("llama_cpp_python-0.3.36.dist-info/RECORD",
                    "".join(f"{path},{digest},1\n" for path, digest in installed.items()))
    found = installed_build_flags(tmp_path / "noa-wheels")
    assert found is not None and found.flags == "-DGGML_NATIVE=ON"
