"""The LiteLLM proxy config assay's tests write, and how the proxy runner finds its install."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from assaylab import litellm


def test_config_points_each_model_group_at_the_simulator_and_maps_aliases() -> None:
    config = litellm.build_config(
        simulator_url="http://127.0.0.1:9999/", models=["gpt-4o", "gpt-4o-mini"], aliases={"bot": "gpt-4o"}
    )
    assert config["model_list"][1] == {
        "model_name": "gpt-4o-mini",
        "litellm_params": {"model": "openai/gpt-4o-mini", "api_base": "http://127.0.0.1:9999/v1", "api_key": "sk-fake"},
    }
    assert config["router_settings"]["model_group_alias"] == {"bot": "gpt-4o"}
    assert config["litellm_settings"]["callbacks"] == ["prometheus"]
    # LiteLLM reads this flag from litellm_settings; under general_settings it is ignored.
    assert config["litellm_settings"]["require_auth_for_metrics_endpoint"] is False
    assert config["general_settings"]["master_key"] == litellm.TEST_MASTER_KEY


def test_written_config_is_yaml_that_reads_back(tmp_path: Path) -> None:
    config = litellm.build_config(simulator_url="http://127.0.0.1:1", models=["m"], master_key="sk-own")
    path = litellm.write_config(tmp_path / "config.yaml", config)
    assert yaml.safe_load(path.read_text()) == config


def test_runner_refuses_to_start_without_the_pinned_install(tmp_path: Path) -> None:
    assert litellm.find_litellm(bin_dir=tmp_path) is None
    with pytest.raises(litellm.LiteLLMNotInstalledError, match=r"hack/litellm\.sh"):
        litellm.LiteLLMProxy(tmp_path / "config.yaml", bin_dir=tmp_path)


def test_install_location_follows_the_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSAY_LITELLM_VENV", str(tmp_path / "venv"))
    assert litellm.venv_dir() == tmp_path / "venv"
    monkeypatch.delenv("ASSAY_LITELLM_VENV")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert litellm.venv_dir() == tmp_path / "assay" / f"litellm-{litellm.LITELLM_VERSION}"


def test_script_pins_the_same_release() -> None:
    script = Path(__file__).parents[3] / "hack" / "litellm.sh"
    assert f'LITELLM_VERSION="{litellm.LITELLM_VERSION}"' in script.read_text()
    assert litellm.LITELLM_VERSION not in {"1.82.7", "1.82.8"}
