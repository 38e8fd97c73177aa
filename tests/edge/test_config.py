"""Configuration: the examples are valid, and every kind of bad file gets an error naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.commands import check_config
from edge.config import EdgeConfig, LineConfig, load_config, load_edge_config
from edge.errors import ConfigError

MINIMAL = """
[station]
id = "S1"
site_id = "SITE"
line_id = "L1"
[devices]
scanner = "fake://x.jsonl"
"""


def write(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_examples_are_valid(repo_root: Path) -> None:
    cfg = load_edge_config(repo_root / "config" / "edge.example.toml")
    assert cfg.station.id == "SZX-HUB1-L3-XR1"
    assert [r.carrier for r in cfg.identify.rules] == ["upu-s10", "sf-express"]
    assert load_config(LineConfig, repo_root / "config" / "line.example.toml").line_id == "L3"


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load_edge_config(write(tmp_path, MINIMAL))
    assert cfg.server.url is None and cfg.classifier.enabled is False
    assert cfg.identify.rules[0].check == "s10"


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_edge_config(write(tmp_path, MINIMAL + 'colour = "red"\n[sorter]\ndeadline = 2\n'))
    text = str(err.value)
    assert "devices.colour: unknown key" in text
    assert "sorter.deadline: unknown key" in text


def test_wrong_types_and_ranges_are_named(tmp_path: Path) -> None:
    bad = (
        MINIMAL
        + '[sorter]\ndeadline_s = "soon"\n[server]\nbatch_size = 0\n'
        + "[policy]\ncategory_thresholds = {fish = 0.5}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_edge_config(write(tmp_path, bad))
    text = str(err.value)
    assert "sorter.deadline_s" in text
    assert "server.batch_size" in text
    assert "unknown goods categories ['fish']" in text


def test_missing_section_and_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="devices: Field required"):
        load_edge_config(write(tmp_path, '[station]\nid="a"\nsite_id="b"\nline_id="c"\n'))
    with pytest.raises(ConfigError, match="not found"):
        load_edge_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_edge_config(write(tmp_path, "[station\n"))


def test_classifier_enabled_needs_manifest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"classifier.*manifest is not set"):
        load_edge_config(write(tmp_path, MINIMAL + "[classifier]\nenabled = true\n"))


def test_config_check_detects_kind(repo_root: Path, tmp_path: Path) -> None:
    assert "edge configuration" in check_config(repo_root / "config" / "edge.example.toml")
    assert "line configuration" in check_config(repo_root / "config" / "line.example.toml")
    with pytest.raises(ConfigError):
        check_config(write(tmp_path, MINIMAL + "[bogus]\n"), "edge")


def test_config_model_is_frozen() -> None:
    assert EdgeConfig.model_config.get("extra") == "forbid"


def test_divert_budget_from_geometry_budget_or_old_deadline(tmp_path: Path, repo_root: Path) -> None:
    assert load_edge_config(repo_root / "config" / "edge.example.toml").sorter.budget_s == 1.5
    assert load_edge_config(write(tmp_path, MINIMAL)).sorter.budget_s == 1.5  # deadline_s's default
    old = load_edge_config(write(tmp_path, MINIMAL + "[sorter]\ndeadline_s = 2.5\n"))
    assert old.sorter.budget_s == 2.5
    both = MINIMAL + "[sorter]\ndeadline_s = 2.5\nscan_to_divert_m = 6.0\nbelt_speed_m_s = 1.5\n"
    assert load_edge_config(write(tmp_path, both)).sorter.budget_s == 4.0
    explicit = both + "divert_budget_s = 0.9\n"
    assert load_edge_config(write(tmp_path, explicit)).sorter.budget_s == 0.9
    with pytest.raises(ConfigError, match="belt_speed_m_s together"):
        load_edge_config(write(tmp_path, MINIMAL + "[sorter]\nscan_to_divert_m = 6.0\n"))
    with pytest.raises(ConfigError, match=r"sorter.belt_speed_m_s"):
        load_edge_config(write(tmp_path, MINIMAL + "[sorter]\nscan_to_divert_m = 6.0\nbelt_speed_m_s = 0\n"))


def test_terminal_login_is_on_by_default_and_plain_pins_are_refused(tmp_path: Path, repo_root: Path) -> None:
    example = load_edge_config(repo_root / "config" / "edge.example.toml").terminal
    assert example.require_login and [o.id for o in example.operators] == ["SZX1024"]
    assert load_edge_config(write(tmp_path, MINIMAL)).terminal.require_login is True
    bad = MINIMAL + '[[terminal.operators]]\nid = "op1"\npin = "1234"\n[terminal.extra]\nx = 1\n'
    with pytest.raises(ConfigError) as err:
        load_edge_config(write(tmp_path, bad))
    text = str(err.value)
    assert "terminal.operators.0.pin: unknown key" in text and "terminal.extra: unknown key" in text
    with pytest.raises(ConfigError, match="op1: set exactly one of pin_hash and pin_env"):
        load_edge_config(write(tmp_path, MINIMAL + '[[terminal.operators]]\nid = "op1"\n'))
    empty = MINIMAL + '[[terminal.operators]]\nid = ""\npin_env = "PIN_X"\n'
    with pytest.raises(ConfigError, match=r"terminal\.operators\.0\.id"):
        load_edge_config(write(tmp_path, empty))
