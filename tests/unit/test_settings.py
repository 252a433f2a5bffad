"""Settings: every key documented in config.toml, unknown keys named, paths and secrets resolved."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
import pytest

from appliance.settings import ProjectSettings, Settings, SettingsError, load_settings, parse_settings

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config.toml"
_KEY_LINE = re.compile(r"^#?\s*([a-z_]+)\s*=.*#\s*\S")


def _documented_keys() -> dict[str, set[str]]:
    """Section → keys that appear in config.toml with a comment on their line."""
    keys: dict[str, set[str]] = {}
    section = ""
    for line in CONFIG.read_text().splitlines():
        header = re.match(r"^\[\[?([a-z_]+)\]\]?", line)
        if header:
            section = header.group(1)
            keys.setdefault(section, set())
            continue
        match = _KEY_LINE.match(line)
        if match:
            keys.setdefault(section, set()).add(match.group(1))
    return keys


def test_every_setting_is_documented_in_config_toml() -> None:
    documented = _documented_keys()
    missing = []
    for section in msgspec.structs.fields(Settings):
        section_type = ProjectSettings if section.name == "projects" else section.type
        for key in msgspec.structs.fields(section_type):
            if key.name not in documented.get(section.name, set()):
                missing.append(f"{section.name}.{key.name}")
    assert missing == []


def test_config_toml_documents_no_unknown_keys() -> None:
    known = {
        section.name: {f.name for f in msgspec.structs.fields(ProjectSettings if section.name == "projects" else section.type)}
        for section in msgspec.structs.fields(Settings)
    }
    extra = [f"{s}.{k}" for s, keys in _documented_keys().items() for k in keys if k not in known.get(s, set())]
    assert extra == []


def test_repository_config_loads() -> None:
    settings = load_settings(CONFIG)
    assert settings.limits.max_batch_events == 2000
    assert settings.projects[0].client_id == "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"
    assert Path(settings.storage.path) == REPO / "var" / "gateway.duckdb"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"server: .*unknown field `prot`"):
        parse_settings(b"[server]\nprot = 80\n", base_dir=tmp_path)


def test_unknown_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="unknown field `serverr`"):
        parse_settings(b"[serverr]\nport = 80\n", base_dir=tmp_path)


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"server.port: Expected `int`"):
        parse_settings(b'[server]\nport = "eighty"\n', base_dir=tmp_path)


def test_client_id_must_be_a_lowercase_uuid(tmp_path: Path) -> None:
    text = b'[[projects]]\nid = "p"\nclient_id = "5F0C4D1E-8A3B-4C2D-9E7F-1A2B3C4D5E6F"\nclient_secret = "s"\n'
    with pytest.raises(SettingsError, match=r"projects\[0\].client_id: must be a lowercase UUID"):
        parse_settings(text, base_dir=tmp_path)


def test_secret_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = b'[[projects]]\nid = "p"\nclient_id = "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"\nclient_secret = "env:GW_TEST_SECRET"\n'
    monkeypatch.setenv("GW_TEST_SECRET", "from-env")
    assert parse_settings(text, base_dir=tmp_path).projects[0].client_secret == "from-env"
    monkeypatch.delenv("GW_TEST_SECRET")
    with pytest.raises(SettingsError, match="GW_TEST_SECRET is not set"):
        parse_settings(text, base_dir=tmp_path)


def test_relative_paths_follow_the_config_file(tmp_path: Path) -> None:
    settings = parse_settings(b'[storage]\npath = "data/g.duckdb"\n', base_dir=tmp_path)
    assert settings.storage.path == str(tmp_path / "data" / "g.duckdb")


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(tmp_path / "nope.toml")


def test_upstream_url_from_environment_and_relative_chdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_settings(b'[upstream]\nurl = "chdb://var/up"\n', base_dir=tmp_path).upstream.url == (
        f"chdb://{tmp_path / 'var' / 'up'}")
    monkeypatch.setenv("GW_TEST_UPSTREAM", "https://u:p@ch.example:8443")
    text = b'[upstream]\nurl = "env:GW_TEST_UPSTREAM"\n'
    assert parse_settings(text, base_dir=tmp_path).upstream.url == "https://u:p@ch.example:8443"
    with pytest.raises(SettingsError, match=r"upstream\.url: scheme must be"):
        parse_settings(b'[upstream]\nurl = "ftp://x"\n', base_dir=tmp_path)


def test_allowed_origins_are_checked_at_start(tmp_path: Path) -> None:
    project = b'[[projects]]\nid = "p"\nclient_id = "5f0c4d1e-8a3b-4c2d-9e7f-1a2b3c4d5e6f"\nclient_secret = "s"\n'
    good = parse_settings(project + b'allowed_origins = ["https://kiosk.example", "*.example.com", "*"]\n', tmp_path)
    assert good.projects[0].allowed_origins == ["https://kiosk.example", "*.example.com", "*"]
    assert parse_settings(project, tmp_path).projects[0].allowed_origins == []
    with pytest.raises(SettingsError, match=r"projects\[0\]\.allowed_origins\[1\]: 'https://kiosk\.example/app': an origin has no path"):
        parse_settings(project + b'allowed_origins = ["*", "https://kiosk.example/app"]\n', tmp_path)
