"""`mechscope kernels build|status`: the extension the library uses, and a failed build named."""

from __future__ import annotations

import json
from pathlib import Path

from mechscope.cli import main
from mechscope.dictionaries.kernels import cpu


def test_status_and_build_name_the_cached_library(capsys):
    assert main(["kernels", "build", "--json"]) == 0
    built = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert main(["kernels", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert status["cpu"] == "c++ extension" and status["cpu_library"] == cpu.extension().__file__  # the file loaded
    assert built["library"].startswith(str(cpu.build_directory()))
    assert Path(status["cpu_library"]).name == Path(built["library"]).name


def test_a_failed_build_exits_2_and_says_the_fallback_is_used(monkeypatch, capsys):
    def broken():
        raise RuntimeError("Error building extension 'mechscope_fused_topk'")

    monkeypatch.setattr("mechscope.dictionaries.kernels.build_kernels", broken)
    assert main(["kernels", "build"]) == 2
    assert "did not build (Error building extension" in capsys.readouterr().err
