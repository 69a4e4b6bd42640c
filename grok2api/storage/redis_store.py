"""The ``redis`` backend.

Keys (``<ns>`` is the namespace, default ``grok2api``)::

    <ns>:token:<token>    hash, one string per record field (None fields absent, tags as JSON)
    <ns>:tokens           set of every token
    <ns>:pool:<pool>      set of the tokens in one pool; <ns>:pools is the set of pool names
    <ns>:tokens:version   counter, INCR'ed by every change to any token
    <ns>:config           the config document (string)
    <ns>:config:version   counter, INCR'ed by every save_config
    <ns>:lock:<name>      redis-py locks (lease renewed while held)

Each write is one Lua script per token (or per batch for add/upsert/delete), so the
"does this token exist" check, the field changes (``HSET``/``HDEL``/``HINCRBY``), the
pool-set bookkeeping and the version bump are atomic: an update can never resurrect a
deleted token and concurrent increments are never lost. Scripts build key names from the
namespace, which is fine on a single Redis server (not Redis Cluster).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.lock import Lock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import LockError, RedisError

from grok2api.storage.base import Storage, StorageError, TokenRecord, TokenUpdate, mask_token, normalize_token
from grok2api.storage.codec import FIELD_BY_NAME, check_namespace, decode_record, record_text_fields, to_text
from grok2api.storage.locks import check_lock_name
from grok2api.storage.urls import redact_url, scrub

log = logging.getLogger(__name__)

_PUT = """
local ns, mode = ARGV[1], ARGV[2]
local i, added = 4, {}
for _ = 1, tonumber(ARGV[3]) do
  local token, nf = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local key = ns .. ':token:' .. token
  local exists = redis.call('EXISTS', key) == 1
  if mode == 'put' or not exists then
    if exists then
      local old = redis.call('HGET', key, 'pool')
      if old then
        redis.call('SREM', ns .. ':pool:' .. old, token)
        if redis.call('SCARD', ns .. ':pool:' .. old) == 0 then redis.call('SREM', ns .. ':pools', old) end
      end
      redis.call('DEL', key)
    end
    local pool = 'basic'
    for j = i, i + 2 * nf - 2, 2 do
      if ARGV[j] == 'pool' then pool = ARGV[j + 1] end
    end
    redis.call('HSET', key, unpack(ARGV, i, i + 2 * nf - 1))
    redis.call('SADD', KEYS[2], token)
    redis.call('SADD', ns .. ':pool:' .. pool, token)
    redis.call('SADD', ns .. ':pools', pool)
    added[#added + 1] = token
  end
  i = i + 2 * nf
end
if #added > 0 then redis.call('INCR', KEYS[1]) end
return added
"""

_UPDATE = """
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local ns, token = ARGV[1], ARGV[2]
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  local f, v = ARGV[i], ARGV[i + 1]
  i = i + 2
  if f == 'pool' then
    local old = redis.call('HGET', key, 'pool')
    if old ~= v then
      if old then
        redis.call('SREM', ns .. ':pool:' .. old, token)
        if redis.call('SCARD', ns .. ':pool:' .. old) == 0 then redis.call('SREM', ns .. ':pools', old) end
      end
      redis.call('SADD', ns .. ':pool:' .. v, token)
      redis.call('SADD', ns .. ':pools', v)
    end
  end
  redis.call('HSET', key, f, v)
end
local ndel = tonumber(ARGV[i])
i = i + 1
for _ = 1, ndel do
  redis.call('HDEL', key, ARGV[i])
  i = i + 1
end
local nincr = tonumber(ARGV[i])
i = i + 1
for _ = 1, nincr do
  redis.call('HINCRBY', key, ARGV[i], ARGV[i + 1])
  i = i + 2
end
return redis.call('INCR', KEYS[2])
"""

_DELETE = """
local ns, n = ARGV[1], 0
for i = 2, #ARGV do
  local token = ARGV[i]
  local key = ns .. ':token:' .. token
  local pool = redis.call('HGET', key, 'pool')
  if redis.call('DEL', key) == 1 then
    n = n + 1
    redis.call('SREM', KEYS[2], token)
    if pool then
      redis.call('SREM', ns .. ':pool:' .. pool, token)
      if redis.call('SCARD', ns .. ':pool:' .. pool) == 0 then redis.call('SREM', ns .. ':pools', pool) end
    end
  end
end
if n > 0 then redis.call('INCR', KEYS[1]) end
return n
"""

# Reads many hashes at once and returns them as one JSON document: [[field, value, ...], ...]
# (an empty list for a missing key). Far cheaper to parse than thousands of HGETALL replies.
_DUMP = """
local out = {}
for i = 1, #KEYS do
  local flat = redis.call('HGETALL', KEYS[i])
  if #flat == 0 then out[i] = false else out[i] = flat end
end
return cjson.encode(out)
"""

_CHUNK = 500


class RedisStorage(Storage):
    """Config and tokens in Redis; see the module docstring for the key layout."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "grok2api",
        connect_timeout: float = 3.0,
        op_timeout: float = 15.0,
        lock_lease: float = 30.0,
    ) -> None:
        self.url = url
        self.ns = check_namespace(namespace)
        self.connect_timeout = connect_timeout
        self.op_timeout = op_timeout
        self.lock_lease = lock_lease
        self._r: aioredis.Redis | None = None
        self._k_tokens = f"{self.ns}:tokens"
        self._k_tokens_version = f"{self.ns}:tokens:version"
        self._k_config = f"{self.ns}:config"
        self._k_config_version = f"{self.ns}:config:version"

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        if self._r is not None:
            return
        client = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=self.connect_timeout,
            socket_timeout=self.op_timeout,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            health_check_interval=30,
        )
        try:
            await asyncio.wait_for(client.ping(), timeout=self.connect_timeout * 3 + 1)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            await client.aclose()
            raise self._error("cannot reach", exc) from None
        self._r = client
        self._put = client.register_script(_PUT)
        self._update = client.register_script(_UPDATE)
        self._delete = client.register_script(_DELETE)
        self._dump = client.register_script(_DUMP)

    async def close(self) -> None:
        if self._r is not None:
            client, self._r = self._r, None
            await client.aclose()

    async def ping(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise self._error("cannot reach", exc) from None

    @property
    def _client(self) -> aioredis.Redis:
        if self._r is None:
            raise StorageError("redis storage is not open (call open() first)")
        return self._r

    def _error(self, what: str, exc: BaseException) -> StorageError:
        detail = scrub(f"{type(exc).__name__}: {exc}", self.url)
        return StorageError(f"{what} redis at {redact_url(self.url)}: {detail}")

    def _token_key(self, token: str) -> str:
        return f"{self.ns}:token:{token}"

    # -- config --------------------------------------------------------------------------
    async def load_config(self) -> str | None:
        try:
            return await self._client.get(self._k_config)
        except RedisError as exc:
            raise self._error("cannot read from", exc) from None

    async def save_config(self, text: str) -> int:
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(self._k_config, text)
                pipe.incr(self._k_config_version)
                _, version = await pipe.execute()
        except RedisError as exc:
            raise self._error("cannot write to", exc) from None
        return int(version)

    async def config_version(self) -> int:
        return await self._counter(self._k_config_version)

    async def tokens_version(self) -> int:
        return await self._counter(self._k_tokens_version)

    async def _counter(self, key: str) -> int:
        try:
            value = await self._client.get(key)
        except RedisError as exc:
            raise self._error("cannot read from", exc) from None
        return int(value or 0)

    # -- tokens --------------------------------------------------------------------------
    async def load_tokens(self) -> list[TokenRecord]:
        client = self._client
        try:
            tokens = sorted(await client.smembers(self._k_tokens))
            out: list[TokenRecord] = []
            for start in range(0, len(tokens), _CHUNK):
                chunk = tokens[start : start + _CHUNK]
                rows = orjson.loads(await self._dump(keys=[self._token_key(t) for t in chunk]))
                for token, flat in zip(chunk, rows):
                    if flat:
                        out.append(self._decode(token, dict(zip(flat[::2], flat[1::2]))))
        except RedisError as exc:
            raise self._error("cannot read from", exc) from None
        return out

    async def get_token(self, token: str) -> TokenRecord | None:
        token = normalize_token(token)
        try:
            raw = await self._client.hgetall(self._token_key(token))
        except RedisError as exc:
            raise self._error("cannot read from", exc) from None
        return self._decode(token, raw) if raw else None

    def _decode(self, token: str, raw: dict[str, str]) -> TokenRecord:
        return decode_record(raw, f"redis key {self.ns}:token:{mask_token(token)}")

    async def add_tokens(self, records: list[TokenRecord]) -> list[str]:
        return await self._put_records("add", records)

    async def upsert_tokens(self, records: list[TokenRecord]) -> None:
        latest = {r.token: r for r in records}
        await self._put_records("put", list(latest.values()))

    async def _put_records(self, mode: str, records: list[TokenRecord]) -> list[str]:
        added: list[str] = []
        try:
            for start in range(0, len(records), _CHUNK):
                chunk = records[start : start + _CHUNK]
                args: list[Any] = [self.ns, mode, len(chunk)]
                for rec in chunk:
                    fields = record_text_fields(rec)
                    args += [rec.token, len(fields)]
                    for name, value in fields.items():
                        args += [name, value]
                result = await self._put(keys=[self._k_tokens_version, self._k_tokens], args=args)
                added.extend(result or [])
        except RedisError as exc:
            raise self._error("cannot write to", exc) from None
        return added

    async def update_tokens(self, updates: list[TokenUpdate]) -> None:
        if not updates:
            return
        try:
            if len(updates) == 1:
                await self._update(**self._update_call(updates[0]))
                return
            for start in range(0, len(updates), _CHUNK):
                async with self._client.pipeline(transaction=False) as pipe:
                    for upd in updates[start : start + _CHUNK]:
                        await self._update(client=pipe, **self._update_call(upd))
                    await pipe.execute()
        except RedisError as exc:
            raise self._error("cannot write to", exc) from None

    def _update_call(self, upd: TokenUpdate) -> dict[str, list[Any]]:
        sets = [(k, v) for k, v in upd.set.items() if v is not None]
        dels = [k for k, v in upd.set.items() if v is None]
        args: list[Any] = [self.ns, upd.token, len(sets)]
        for name, value in sets:
            args += [name, to_text(FIELD_BY_NAME[name], value)]
        args += [len(dels), *dels, len(upd.incr)]
        for name, delta in upd.incr.items():
            args += [name, int(delta)]
        return {"keys": [self._token_key(upd.token), self._k_tokens_version], "args": args}

    async def delete_tokens(self, tokens: list[str]) -> int:
        wanted = list(dict.fromkeys(t for t in map(normalize_token, tokens) if t))
        removed = 0
        try:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                keys = [self._k_tokens_version, self._k_tokens]
                removed += int(await self._delete(keys=keys, args=[self.ns, *chunk]))
        except RedisError as exc:
            raise self._error("cannot write to", exc) from None
        return removed

    # -- coordination --------------------------------------------------------------------
    def lock(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[bool]:
        return self._lock(check_lock_name(name), timeout)

    @asynccontextmanager
    async def _lock(self, name: str, timeout: float) -> AsyncIterator[bool]:
        lock = Lock(
            self._client,
            f"{self.ns}:lock:{name}",
            timeout=self.lock_lease,
            sleep=0.025,
            blocking=True,
            blocking_timeout=max(timeout, 0.001),
            thread_local=False,
        )
        try:
            acquired = bool(await lock.acquire())
        except RedisError as exc:
            raise self._error("cannot lock in", exc) from None
        if not acquired:
            yield False
            return
        keeper = asyncio.create_task(self._keep_alive(lock))
        try:
            yield True
        finally:
            keeper.cancel()
            try:
                await lock.release()
            except LockError:
                log.warning("redis lock %r expired before it was released", name)
            except RedisError as exc:
                log.warning("could not release redis lock %r: %s", name, type(exc).__name__)

    async def _keep_alive(self, lock: Lock) -> None:
        """Renew the lease while the lock is held, so long critical sections keep it."""
        while True:
            await asyncio.sleep(self.lock_lease / 3)
            try:
                await lock.reacquire()
            except (LockError, RedisError) as exc:
                log.warning("could not renew redis lock: %s", type(exc).__name__)
                return

    async def purge(self) -> None:
        """Delete every key of this namespace (tests and benchmarks only)."""
        client = self._client
        batch: list[str] = []
        async for key in client.scan_iter(match=f"{self.ns}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)
