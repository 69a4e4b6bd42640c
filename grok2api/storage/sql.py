"""The ``mysql`` (aiomysql) and ``pgsql`` (asyncpg) backends: one implementation, two dialects.

Tables (``<ns>`` is the lower-cased namespace, default ``grok2api``)::

    <ns>_tokens  token_id CHAR(64) PRIMARY KEY  -- sha256 hex of the token
                 one column per TokenRecord field (tags as JSON text), updated_at BIGINT,
                 index on pool
    <ns>_meta    k VARCHAR(64) PRIMARY KEY, num BIGINT, txt LONGTEXT/TEXT
                 row 'config': txt = config document, num = config_version()
                 row 'tokens': num = tokens_version()

Every token write is one transaction that first bumps the ``tokens`` meta row (which also
serialises writers, so there is no deadlock between batches) and then applies per-row
statements such as ``UPDATE ... SET use_count = use_count + ?``; a write that changes no
row is rolled back, leaving the version alone. Missing columns (a field added to
``TokenRecord`` later) are added on ``open()``. Named locks are ``GET_LOCK`` (MySQL /
MariaDB) or ``pg_try_advisory_lock`` (PostgreSQL), held on a dedicated pooled connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from grok2api.storage.base import (
    Storage,
    StorageConfigError,
    StorageError,
    TokenRecord,
    TokenUpdate,
    mask_token,
    normalize_token,
    now_ms,
)
from grok2api.storage.codec import (
    FIELD_BY_NAME,
    FIELDS,
    FieldSpec,
    check_namespace,
    combined_assignments,
    decode_record,
    record_columns,
    to_column,
)
from grok2api.storage.locks import acquire_within, check_lock_name
from grok2api.storage.urls import parse_server_url, redact_url, scrub

log = logging.getLogger(__name__)

_CHUNK = 500
_COLUMNS = [f.name for f in FIELDS]


def token_id(token: str) -> str:
    """The primary key of a token row: sha256 hex of the bare token."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- dialects ---------------------------------------------------------------------------
class Conn(ABC):
    """One pooled connection, with the few operations the backend needs ("?" placeholders)."""

    discard = False  # set when the connection must not go back to the pool

    @abstractmethod
    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; returns the affected (matched) row count."""

    @abstractmethod
    async def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def begin(self) -> None: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...


class Dialect(ABC):
    """What differs between PostgreSQL and MySQL: driver, placeholders, DDL, locks."""

    name: str
    errors: tuple[type[BaseException], ...]
    text_type = "TEXT"
    long_text_type = "TEXT"
    table_suffix = ""

    @abstractmethod
    async def connect(self, url: str, *, timeout: float, op_timeout: float, pool_size: int) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def connection(self) -> AbstractAsyncContextManager[Conn]: ...

    @abstractmethod
    def index_ddl(self, table: str, column: str) -> tuple[str, str]:
        """(clause inside CREATE TABLE, separate statement) - one of them empty."""

    @abstractmethod
    async def try_lock(self, conn: Conn, name: str) -> bool: ...

    @abstractmethod
    async def unlock(self, conn: Conn, name: str) -> None: ...

    current_schema = ""


class _PgConn(Conn):
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self._tx: Any = None

    @staticmethod
    def _q(sql: str) -> str:
        parts = sql.split("?")
        return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        status = await self.raw.execute(self._q(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        await self.raw.executemany(self._q(sql), rows)

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.raw.fetch(self._q(sql), *args)]

    async def begin(self) -> None:
        self._tx = self.raw.transaction()
        await self._tx.start()

    async def commit(self) -> None:
        tx, self._tx = self._tx, None
        await tx.commit()

    async def rollback(self) -> None:
        tx, self._tx = self._tx, None
        if tx is not None:
            await tx.rollback()


class PgDialect(Dialect):
    """PostgreSQL through asyncpg."""

    name = "pgsql"
    current_schema = "current_schema()"

    def __init__(self) -> None:
        import asyncpg

        self._asyncpg = asyncpg
        self.errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
        self._pool: Any = None

    async def connect(self, url: str, *, timeout: float, op_timeout: float, pool_size: int) -> None:
        dsn = "postgresql://" + url.split("://", 1)[1]
        self._pool = await asyncio.wait_for(
            self._asyncpg.create_pool(
                dsn, min_size=1, max_size=pool_size, timeout=timeout, command_timeout=op_timeout
            ),
            timeout=timeout * 2 + 1,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        raw = await self._pool.acquire()
        conn = _PgConn(raw)
        try:
            yield conn
        finally:
            if conn.discard:
                raw.terminate()
            await self._pool.release(raw)

    def index_ddl(self, table: str, column: str) -> tuple[str, str]:
        return "", f"CREATE INDEX IF NOT EXISTS {table}_{column}_idx ON {table} ({column})"

    @staticmethod
    def _key(name: str) -> int:
        return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)

    async def try_lock(self, conn: Conn, name: str) -> bool:
        rows = await conn.fetch("SELECT pg_try_advisory_lock(?)", (self._key(name),))
        return bool(rows[0][0])

    async def unlock(self, conn: Conn, name: str) -> None:
        await conn.fetch("SELECT pg_advisory_unlock(?)", (self._key(name),))


class _MyConn(Conn):
    def __init__(self, raw: Any) -> None:
        self.raw = raw

    @staticmethod
    def _q(sql: str) -> str:
        return sql.replace("?", "%s")

    async def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        async with self.raw.cursor() as cur:
            await cur.execute(self._q(sql), tuple(args) if args else None)
            return max(cur.rowcount, 0)

    async def executemany(self, sql: str, rows: list[Sequence[Any]]) -> None:
        async with self.raw.cursor() as cur:
            await cur.executemany(self._q(sql), [tuple(r) for r in rows])

    async def fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.raw.cursor() as cur:
            await cur.execute(self._q(sql), tuple(args) if args else None)
            return list(await cur.fetchall())

    async def begin(self) -> None:
        await self.raw.begin()

    async def commit(self) -> None:
        await self.raw.commit()

    async def rollback(self) -> None:
        await self.raw.rollback()


class MySqlDialect(Dialect):
    """MySQL / MariaDB through aiomysql (autocommit, explicit BEGIN for transactions)."""

    name = "mysql"
    long_text_type = "LONGTEXT"
    table_suffix = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
    current_schema = "DATABASE()"

    def __init__(self) -> None:
        import aiomysql
        import pymysql

        self._aiomysql = aiomysql
        self.errors = (pymysql.err.MySQLError, OSError, asyncio.TimeoutError)
        self._pool: Any = None

    async def connect(self, url: str, *, timeout: float, op_timeout: float, pool_size: int) -> None:
        from pymysql.constants import CLIENT

        addr = parse_server_url(url)
        if not addr.database:
            raise StorageConfigError(
                "SERVER_STORAGE_URL for mysql must name a database: mysql://user:pw@host:3306/db"
            )
        self._pool = await asyncio.wait_for(
            self._aiomysql.create_pool(
                minsize=1,
                maxsize=pool_size,
                host=addr.host,
                port=addr.port or 3306,
                user=addr.user or "root",
                password=addr.password or "",
                db=addr.database,
                autocommit=True,
                charset="utf8mb4",
                connect_timeout=timeout,
                client_flag=CLIENT.FOUND_ROWS,
                pool_recycle=3600,
            ),
            timeout=timeout * 2 + 1,
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.close()
            await pool.wait_closed()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        raw = await self._pool.acquire()
        conn = _MyConn(raw)
        try:
            yield conn
        finally:
            if conn.discard:
                raw.close()
            self._pool.release(raw)

    def index_ddl(self, table: str, column: str) -> tuple[str, str]:
        return f", INDEX {table}_{column}_idx ({column})", ""

    @staticmethod
    def _name(name: str) -> str:
        return name if len(name) <= 64 else "g2a:" + hashlib.sha256(name.encode()).hexdigest()[:60]

    async def try_lock(self, conn: Conn, name: str) -> bool:
        rows = await conn.fetch("SELECT GET_LOCK(?, 0)", (self._name(name),))
        return rows[0][0] == 1

    async def unlock(self, conn: Conn, name: str) -> None:
        await conn.fetch("SELECT RELEASE_LOCK(?)", (self._name(name),))


# -- the backend ------------------------------------------------------------------------
class _Tx:
    """A running transaction; ``abort()`` makes it roll back instead of commit."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class SqlStorage(Storage):
    """Config and tokens in MySQL/MariaDB or PostgreSQL; see the module docstring for tables."""

    def __init__(
        self,
        kind: str,
        url: str,
        *,
        namespace: str = "grok2api",
        connect_timeout: float = 5.0,
        op_timeout: float = 30.0,
        pool_size: int = 10,
    ) -> None:
        if kind not in ("mysql", "pgsql"):
            raise StorageConfigError(f"SqlStorage kind must be mysql or pgsql, not {kind!r}")
        self.kind = kind
        self.url = url
        self.ns = check_namespace(namespace)
        self.tokens_table = f"{self.ns.lower()}_tokens"
        self.meta_table = f"{self.ns.lower()}_meta"
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.pool_size = pool_size
        self._d: Dialect | None = None

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._d is not None:
            return
        dialect: Dialect = PgDialect() if self.kind == "pgsql" else MySqlDialect()
        try:
            await dialect.connect(
                self.url, timeout=self.connect_timeout, op_timeout=self.op_timeout, pool_size=self.pool_size
            )
        except StorageError:
            raise
        except (*dialect.errors, ConnectionError) as exc:
            raise self._error("cannot reach", exc) from None
        self._d = dialect
        try:
            await self._create_schema()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._d is not None:
            dialect, self._d = self._d, None
            await dialect.close()

    async def ping(self) -> None:
        async with self._guard("cannot reach"), self.dialect.connection() as c:
            await c.fetch("SELECT 1")

    @property
    def dialect(self) -> Dialect:
        if self._d is None:
            raise StorageError(f"{self.kind} storage is not open (call open() first)")
        return self._d

    def _error(self, what: str, exc: BaseException) -> StorageError:
        detail = scrub(f"{type(exc).__name__}: {exc}", self.url)
        return StorageError(f"{what} {self.kind} at {redact_url(self.url)}: {detail}")

    @asynccontextmanager
    async def _guard(self, what: str) -> AsyncIterator[None]:
        """Turn driver exceptions into :class:`StorageError` (password scrubbed)."""
        try:
            yield
        except StorageError:
            raise
        except self.dialect.errors as exc:
            raise self._error(what, exc) from None

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[_Tx]:
        async with self._guard("cannot write to"), self.dialect.connection() as conn:
            await conn.begin()
            tx = _Tx(conn)
            try:
                yield tx
            except BaseException:
                try:
                    await conn.rollback()
                except Exception:  # the connection is unusable; never reuse it
                    conn.discard = True
                raise
            if tx.aborted:
                await conn.rollback()
            else:
                await conn.commit()

    def _column_type(self, spec: FieldSpec) -> str:
        if spec.name in ("pool", "status"):
            return "VARCHAR(64)"
        return {"int": "BIGINT", "bool": "BOOLEAN"}.get(spec.kind, "TEXT")

    async def _create_schema(self) -> None:
        d, t, m = self.dialect, self.tokens_table, self.meta_table
        columns = ",\n  ".join(
            f"{f.name} {self._column_type(f)}{'' if f.optional else ' NOT NULL'}" for f in FIELDS
        )
        inline_index, index_stmt = d.index_ddl(t, "pool")
        async with self.lock("schema", timeout=30) as got:
            if not got:
                raise StorageError(f"{self.kind}: timed out waiting for the schema lock")
            async with self._guard("cannot create tables in"), d.connection() as c:
                tables = {
                    str(r[0]).lower()
                    for r in await c.fetch(
                        "SELECT table_name FROM information_schema.tables "
                        f"WHERE table_schema = {d.current_schema} AND table_name IN (?, ?)",
                        (t, m),
                    )
                }
                if t not in tables:
                    await c.execute(
                        f"CREATE TABLE {t} (\n  token_id CHAR(64) NOT NULL PRIMARY KEY,\n  {columns},\n"
                        f"  updated_at BIGINT NOT NULL{inline_index}\n){d.table_suffix}"
                    )
                    if index_stmt:
                        await c.execute(index_stmt)
                if m not in tables:
                    await c.execute(
                        f"CREATE TABLE {m} (k VARCHAR(64) NOT NULL PRIMARY KEY, "
                        f"num BIGINT NOT NULL DEFAULT 0, txt {d.long_text_type} NULL){d.table_suffix}"
                    )
                    await c.execute(f"INSERT INTO {m} (k, num) VALUES ('config', 0), ('tokens', 0)")
                existing = {
                    str(r[0]).lower()
                    for r in await c.fetch(
                        "SELECT column_name FROM information_schema.columns "
                        f"WHERE table_schema = {d.current_schema} AND table_name = ?",
                        (t,),
                    )
                }
                for f in FIELDS:
                    if f.name not in existing:
                        log.info("%s: adding column %s to %s", self.kind, f.name, t)
                        await c.execute(f"ALTER TABLE {t} ADD COLUMN {f.name} {self._column_type(f)} NULL")

    # -- meta ----------------------------------------------------------------------------
    async def _meta(self, key: str, column: str) -> Any:
        async with self._guard("cannot read from"), self.dialect.connection() as c:
            rows = await c.fetch(f"SELECT {column} FROM {self.meta_table} WHERE k = ?", (key,))
        return rows[0][0] if rows else None

    async def _bump(self, tx: _Tx, key: str = "tokens") -> None:
        await tx.conn.execute(f"UPDATE {self.meta_table} SET num = num + 1 WHERE k = ?", (key,))

    async def load_config(self) -> str | None:
        return await self._meta("config", "txt")

    async def save_config(self, text: str) -> int:
        async with self._tx() as tx:
            await tx.conn.execute(
                f"UPDATE {self.meta_table} SET txt = ?, num = num + 1 WHERE k = ?", (text, "config")
            )
            rows = await tx.conn.fetch(f"SELECT num FROM {self.meta_table} WHERE k = ?", ("config",))
        return int(rows[0][0])

    async def config_version(self) -> int:
        return int(await self._meta("config", "num") or 0)

    async def tokens_version(self) -> int:
        return int(await self._meta("tokens", "num") or 0)

    # -- tokens: reads -------------------------------------------------------------------
    def _select(self) -> str:
        return f"SELECT {', '.join(_COLUMNS)} FROM {self.tokens_table}"

    def _decode(self, row: tuple[Any, ...]) -> TokenRecord:
        raw = dict(zip(_COLUMNS, row))
        token = raw.get("token")
        label = mask_token(token) if isinstance(token, str) else "?"
        return decode_record(raw, f"{self.kind} table {self.tokens_table}, token {label}")

    async def load_tokens(self) -> list[TokenRecord]:
        async with self._guard("cannot read from"), self.dialect.connection() as c:
            rows = await c.fetch(self._select())
        return [self._decode(r) for r in rows]

    async def get_token(self, token: str) -> TokenRecord | None:
        async with self._guard("cannot read from"), self.dialect.connection() as c:
            rows = await c.fetch(self._select() + " WHERE token_id = ?", (token_id(normalize_token(token)),))
        return self._decode(rows[0]) if rows else None

    # -- tokens: writes ------------------------------------------------------------------
    def _insert_sql(self) -> str:
        cols = ["token_id", *_COLUMNS, "updated_at"]
        return f"INSERT INTO {self.tokens_table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"

    @staticmethod
    def _row(record: TokenRecord, now: int) -> list[Any]:
        return [token_id(record.token), *record_columns(record).values(), now]

    @staticmethod
    def _in(n: int) -> str:
        return f"IN ({', '.join('?' * n)})"

    async def add_tokens(self, records: list[TokenRecord]) -> list[str]:
        unique = list({r.token: r for r in reversed(records)}.values())[::-1]  # first one wins
        if not unique:
            return []
        async with self._tx() as tx:
            await self._bump(tx)
            existing: set[str] = set()
            ids = [token_id(r.token) for r in unique]
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                rows = await tx.conn.fetch(
                    f"SELECT token_id FROM {self.tokens_table} WHERE token_id {self._in(len(chunk))}", chunk
                )
                existing.update(str(r[0]) for r in rows)
            new = [r for r, i in zip(unique, ids) if i not in existing]
            if not new:
                tx.abort()
                return []
            now = now_ms()
            await tx.conn.executemany(self._insert_sql(), [self._row(r, now) for r in new])
        return [r.token for r in new]

    async def upsert_tokens(self, records: list[TokenRecord]) -> None:
        latest = list({r.token: r for r in records}.values())
        if not latest:
            return
        async with self._tx() as tx:
            await self._bump(tx)
            ids = [token_id(r.token) for r in latest]
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                sql = f"DELETE FROM {self.tokens_table} WHERE token_id {self._in(len(chunk))}"
                await tx.conn.execute(sql, chunk)
            now = now_ms()
            await tx.conn.executemany(self._insert_sql(), [self._row(r, now) for r in latest])

    def _update_statement(self, upd: TokenUpdate, now: int) -> tuple[str, list[Any]]:
        sets, incr = combined_assignments(upd)
        clauses: list[str] = []
        args: list[Any] = []
        for name, value in sets.items():
            clauses.append(f"{name} = ?")
            args.append(to_column(FIELD_BY_NAME[name], value))
        for name, delta in incr.items():
            clauses.append(f"{name} = {name} + ?")
            args.append(int(delta))
        clauses.append("updated_at = ?")
        args += [now, token_id(upd.token)]
        return f"UPDATE {self.tokens_table} SET {', '.join(clauses)} WHERE token_id = ?", args

    async def update_tokens(self, updates: list[TokenUpdate]) -> None:
        if not updates:
            return
        now = now_ms()
        async with self._tx() as tx:
            await self._bump(tx)
            matched = 0
            for upd in updates:
                sql, args = self._update_statement(upd, now)
                matched += await tx.conn.execute(sql, args)
            if not matched:
                tx.abort()

    async def delete_tokens(self, tokens: list[str]) -> int:
        ids = list(dict.fromkeys(token_id(t) for t in map(normalize_token, tokens) if t))
        if not ids:
            return 0
        removed = 0
        async with self._tx() as tx:
            await self._bump(tx)
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                removed += await tx.conn.execute(
                    f"DELETE FROM {self.tokens_table} WHERE token_id {self._in(len(chunk))}", chunk
                )
            if not removed:
                tx.abort()
        return removed

    # -- coordination --------------------------------------------------------------------
    def lock(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[bool]:
        return self._lock(f"{self.ns}:{check_lock_name(name)}", timeout)

    @asynccontextmanager
    async def _lock(self, name: str, timeout: float) -> AsyncIterator[bool]:
        d = self.dialect
        async with d.connection() as conn:
            async with self._guard("cannot lock in"):
                acquired = await acquire_within(lambda: d.try_lock(conn, name), timeout)
            if not acquired:
                yield False
                return
            try:
                yield True
            finally:
                try:
                    await d.unlock(conn, name)
                except BaseException:
                    conn.discard = True  # closing the session releases the lock
                    raise

    async def purge(self) -> None:
        """Drop this namespace's tables (tests and benchmarks only)."""
        async with self._guard("cannot write to"), self.dialect.connection() as c:
            for table in (self.tokens_table, self.meta_table):
                await c.execute(f"DROP TABLE IF EXISTS {table}")

