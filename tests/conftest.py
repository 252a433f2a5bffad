"""Fixtures shared by all tiers."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.settings import Settings, load_settings
from tests.helpers import write_config


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with storage in a temporary folder."""
    return load_settings(write_config(tmp_path))


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ClickHouse's embedded engine runs once per process: every in-process upstream test shares
    this folder, each with a database of its own."""
    return tmp_path_factory.mktemp("upstream")
