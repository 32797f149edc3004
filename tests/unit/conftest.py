"""Fixtures shared by the unit tests."""
from __future__ import annotations

import pytest

from .pipeline_kit import Parts


@pytest.fixture
async def parts(tmp_path):
    """A store, the outbox on a recording connection, the messenger and the audit log, started."""
    parts = await Parts(tmp_path).start()
    yield parts
    await parts.stop()
