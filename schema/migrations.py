"""Running the migrations from Python (the migration runner, the local stack, tests, benchmarks)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from schema.database import sqlalchemy_url

ALEMBIC_INI = Path(__file__).resolve().parent.parent / "alembic.ini"


def alembic_config(url: str) -> Config:
    """Alembic's config for the database at `url`, as the `alembic` command builds it from alembic.ini."""
    config = Config(str(ALEMBIC_INI), attributes={"configure_logger": False})
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def upgrade_head(url: str) -> None:
    """`alembic upgrade head` against `url`."""
    command.upgrade(alembic_config(url), "head")
