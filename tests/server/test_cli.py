"""`mechscope serve` refuses an unsafe bind before loading anything."""

from __future__ import annotations

from mechscope.cli import main


def test_serve_refuses_a_public_bind_without_a_token(capsys, monkeypatch):
    monkeypatch.delenv("MECHSCOPE_API_TOKEN", raising=False)
    assert main(["serve", "no-such-model", "--host", "0.0.0.0"]) == 2
    assert "without a bearer token" in capsys.readouterr().err
    assert main(["serve", "no-such-model", "--port", "70000"]) == 2
    assert "port must be in 0..65535" in capsys.readouterr().err
