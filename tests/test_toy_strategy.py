"""A fourth strategy is one module: optimize --dry-run, optimize, show and show --json use it unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import tests.toy_strategy  # noqa: F401 - registers "toy"
from promptopt.testing.stub_server import StubServer
from tests.conftest import invoke


def test_a_toy_strategy_runs_through_every_command(here: Path) -> None:
    with StubServer() as stub:
        flags = ["-t", "Poem", "--strategy", "toy", "--option", "tone=cheerful", "--model", "openai/stub"]
        flags += ["--api-base", stub.url]
        dry = invoke("optimize", *flags, "-r", "3", "--dry-run", "--json")
        assert dry.exit_code == 0, dry.output
        assert json.loads(dry.stdout)["roles"]["optimizer"]["calls"] == 2
        run = invoke("optimize", *flags, "-r", "3", "--json")
        assert run.exit_code == 0, run.output
        assert json.loads(run.stdout)["strategy"] == "toy"
        asked = [r["body"]["messages"][-1]["content"] for r in stub.requests if r["role"] == "optimizer"]
        assert asked and all("in a cheerful tone" in text for text in asked)  # its own prompt file
        bad = invoke("optimize", *flags[:-2], "--option", "tries=9", "--name", "bad", "--api-base", stub.url)
        assert bad.exit_code == 2 and "--option tries 9: must be at most 3" in bad.output
        unknown = invoke("optimize", *flags, "--option", "eta=0.3", "--name", "other")
        assert unknown.exit_code == 2 and "--strategy toy has no option eta (dual-phase has it)" in unknown.output
    table = invoke("show", "workspace/Poem")
    assert table.exit_code == 0 and "3 rounds" in table.output
    detail = invoke("show", "workspace/Poem", "--round", "2")
    assert "asked for a cheerful tone" in detail.output  # its own state view
    as_json = json.loads(invoke("show", "workspace/Poem", "--json").stdout)
    assert [r["round"] for r in as_json["rounds"]] == [1, 2, 3]
