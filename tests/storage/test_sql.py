"""SQL-backend specifics: table layout and adding columns for fields introduced later."""

from __future__ import annotations

import pytest

from grok2api.storage import Storage
from grok2api.storage.sql import SqlStorage, token_id

from .conftest import BackendSpec
from .test_contract import full_record, minimal_record


@pytest.fixture(params=["mysql", "pgsql"])
def backend(request: pytest.FixtureRequest, tmp_path) -> BackendSpec:  # narrows the shared fixture
    import uuid

    kind = request.param
    return BackendSpec(kind, request.getfixturevalue(f"{kind}_url"), tmp_path, f"t{uuid.uuid4().hex[:12]}")


async def test_rows_are_keyed_by_sha256_and_columns_added_on_open(
    backend: BackendSpec, storage: Storage
) -> None:
    assert isinstance(storage, SqlStorage)
    rec = full_record()
    await storage.add_tokens([rec, minimal_record()])
    async with storage.dialect.connection() as c:
        rows = await c.fetch(f"SELECT token_id FROM {storage.tokens_table} WHERE token = ?", (rec.token,))
        assert rows == [(token_id(rec.token),)]
        await c.execute(f"ALTER TABLE {storage.tokens_table} DROP COLUMN cooldown_until")
        await c.execute(f"ALTER TABLE {storage.tokens_table} DROP COLUMN note")
    reopened = backend.create()
    await reopened.open()
    try:
        got = await reopened.get_token(rec.token)
        assert got.cooldown_until is None and got.note == ""  # NULL in a new column -> default
        dropped = {"cooldown_until", "note"}
        assert got.model_dump(exclude=dropped) == rec.model_dump(exclude=dropped)
        await reopened.upsert_tokens([rec])
        assert (await reopened.get_token(rec.token)).model_dump() == rec.model_dump()
    finally:
        await reopened.close()
