"""The ``local`` backend: plain files under ``DATA_DIR``, safe for several processes.

Layout (all under ``DATA_DIR``)::

    config.toml        the config document, exactly the text given to save_config
    config.version     {"version": n, "sig": [inode, size, mtime_ns]}; n is config_version()
    token.json         snapshot {"format": 1, "seq": n, "tokens": [record, ...]} (pretty JSON)
    token.journal      append-only deltas after the snapshot, one JSON object per line:
                       {"seq": n, "op": "put"|"update"|"delete", ...}
    .locks/<name>.lock fcntl.flock lock files (storage.tokens, storage.config, user locks)

Token writes append one journal line under an exclusive ``flock`` (readers take a shared
one), so a delta costs one small ``write`` however many tokens exist. Every process
replays the journal lines it has not seen yet into its in-memory copy. When the journal
reaches ``compact_every`` entries (or ``compact_bytes``) the writer holding the lock
writes a new snapshot (tmp file + fsync + rename) carrying the last ``seq`` and then
truncates the journal; entries whose ``seq`` is already in the snapshot are skipped, so
a crash between the two steps never applies a delta twice. The last ``seq`` is
``tokens_version()``.

Bad data is never overwritten: an unparsable ``token.json``, ``config.toml`` or journal
line raises :class:`CorruptDataError` with the path and line, and every write refuses to
proceed until the operator fixes it. A torn last journal line (a crash mid-``write``) is
reported in the log and dropped; the entries before it are kept. A ``token.json`` in the
older pool-keyed form ``{"<pool>": [record | token, ...]}`` is read too.

Journal appends are not fsync'ed by default (``fsync_journal=True`` to change that): a
process crash loses nothing, a power cut may lose the last few usage updates.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from grok2api.storage.base import (
    CorruptDataError,
    Storage,
    StorageError,
    TokenRecord,
    TokenUpdate,
    normalize_token,
)
from grok2api.storage.codec import describe_validation
from grok2api.storage.locks import check_lock_name, file_lock

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1
Sig = tuple[int, int, int]


def _sig(path: Path) -> Sig | None:
    """Identity of a file's current content: (inode, size, mtime_ns), ``None`` if missing."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _line_of(data: bytes, needle: bytes) -> int | None:
    pos = data.find(needle) if needle else -1
    return data.count(b"\n", 0, pos) + 1 if pos >= 0 else None


def _copy(record: TokenRecord) -> TokenRecord:
    """A copy the caller may mutate freely (``tags`` is the only mutable field value)."""
    return record.model_copy(update={"tags": list(record.tags)})


class _Stale(Exception):
    """The cached journal position no longer matches the file (another process compacted)."""


class LocalStorage(Storage):
    """Config and tokens in files under ``data_dir``; see the module docstring for the layout."""

    kind = "local"

    def __init__(
        self,
        data_dir: Path | str,
        *,
        namespace: str = "grok2api",
        compact_every: int = 2000,
        compact_bytes: int = 8 << 20,
        fsync_journal: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.namespace = namespace  # one DATA_DIR holds one namespace; kept for symmetry
        self.config_path = self.data_dir / "config.toml"
        self.config_version_path = self.data_dir / "config.version"
        self.tokens_path = self.data_dir / "token.json"
        self.journal_path = self.data_dir / "token.journal"
        self.locks_dir = self.data_dir / ".locks"
        self.compact_every = max(1, compact_every)
        self.compact_bytes = compact_bytes
        self.fsync_journal = fsync_journal
        self._mutex = threading.Lock()
        self._journal_fd: int | None = None
        self._tokens_lock_fd: int | None = None
        self._reset_cache()
        self._warned_torn: tuple[int, int] | None = None

    def _reset_cache(self) -> None:
        self._loaded = False
        self._records: dict[str, TokenRecord] = {}
        self._snap_sig: Sig | None = None
        self._seq = 0
        self._jr_offset = 0
        self._jr_lines = 0
        self._jr_entries = 0

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self) -> None:
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        with self._mutex:
            if self._journal_fd is not None:
                return
            try:
                self.locks_dir.mkdir(parents=True, exist_ok=True)
                lock_fd = os.open(self.locks_dir / "storage.tokens.lock", os.O_RDWR | os.O_CREAT, 0o644)
                jfd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError as exc:
                raise StorageError(f"cannot use DATA_DIR {self.data_dir}: {exc.strerror}") from None
            self._tokens_lock_fd, self._journal_fd = lock_fd, jfd
            self._reset_cache()

    async def close(self) -> None:
        await asyncio.to_thread(self._close_sync)

    def _close_sync(self) -> None:
        if self._journal_fd is None:
            return
        try:
            with self._locked(exclusive=True):
                self._refresh()
                if self._jr_entries:
                    self._compact()
        except StorageError as exc:
            log.warning("local storage: not compacting on close: %s", exc)
        with self._mutex:
            for fd in (self._journal_fd, self._tokens_lock_fd):
                if fd is not None:
                    os.close(fd)
            self._journal_fd = self._tokens_lock_fd = None
            self._reset_cache()

    async def ping(self) -> None:
        if not os.access(self.data_dir, os.W_OK | os.X_OK):
            raise StorageError(f"DATA_DIR {self.data_dir} is not writable")

    # -- config --------------------------------------------------------------------------
    async def load_config(self) -> str | None:
        return await asyncio.to_thread(self._load_config_sync)

    def _load_config_sync(self) -> str | None:
        path = self.config_path
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            detail = f"not UTF-8 text (byte 0x{data[exc.start]:02x})"
            raise CorruptDataError(str(path), line, detail) from None
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"at line (\d+)", str(exc))
            line = int(match.group(1)) if match else None
            raise CorruptDataError(str(path), line, f"invalid TOML: {exc}") from None
        return text

    async def save_config(self, text: str) -> int:
        return await asyncio.to_thread(self._save_config_sync, text)

    def _save_config_sync(self, text: str) -> int:
        with self._config_lock():
            version, _ = self._read_config_meta()
            try:
                self._load_config_sync()
            except CorruptDataError as exc:
                backup = self.config_path.with_name(f"config.toml.corrupt-{int(time.time())}")
                os.replace(self.config_path, backup)
                log.warning("replacing unreadable %s; the old file was kept as %s", exc.path, backup)
            _atomic_write(self.config_path, text.encode("utf-8"))
            version += 1
            self._write_config_meta(version, _sig(self.config_path))
            return version

    async def config_version(self) -> int:
        return await asyncio.to_thread(self._config_version_sync)

    def _config_version_sync(self) -> int:
        version, sig = self._read_config_meta()
        if sig == _sig(self.config_path):
            return version
        # config.toml was edited, created or removed by hand: count that as a save.
        with self._config_lock():
            version, sig = self._read_config_meta()
            current = _sig(self.config_path)
            if sig != current:
                version += 1
                self._write_config_meta(version, current)
            return version

    @contextmanager
    def _config_lock(self) -> Iterator[None]:
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.locks_dir / "storage.config.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the only descriptor releases the flock

    def _read_config_meta(self) -> tuple[int, Sig | None]:
        try:
            meta = orjson.loads(self.config_version_path.read_bytes())
            sig = tuple(meta["sig"]) if meta.get("sig") else None
            return int(meta["version"]), sig  # type: ignore[return-value]
        except FileNotFoundError:
            return 0, None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("local storage: %s is unreadable; config version restarts", self.config_version_path)
            return 0, (-1, -1, -1)

    def _write_config_meta(self, version: int, sig: Sig | None) -> None:
        body = orjson.dumps({"version": version, "sig": list(sig) if sig else None})
        _atomic_write(self.config_version_path, body + b"\n")

    # -- tokens: reads -------------------------------------------------------------------
    async def load_tokens(self) -> list[TokenRecord]:
        return await asyncio.to_thread(self._read, lambda: [_copy(r) for r in self._records.values()])

    async def get_token(self, token: str) -> TokenRecord | None:
        key = normalize_token(token)

        def pick() -> TokenRecord | None:
            rec = self._records.get(key)
            return _copy(rec) if rec else None

        return await asyncio.to_thread(self._read, pick)

    async def tokens_version(self) -> int:
        return await asyncio.to_thread(self._read, lambda: self._seq)

    def _read(self, pick: Any) -> Any:
        with self._locked(exclusive=False):
            self._refresh()
            return pick()

    # -- tokens: writes ------------------------------------------------------------------
    async def add_tokens(self, records: list[TokenRecord]) -> list[str]:
        return await asyncio.to_thread(self._write, self._add, records)

    def _add(self, records: list[TokenRecord]) -> list[str]:
        new: dict[str, TokenRecord] = {}
        for rec in records:
            if rec.token not in self._records and rec.token not in new:
                new[rec.token] = _copy(rec)
        if new:
            self._append({"op": "put", "records": [r.model_dump(mode="json") for r in new.values()]})
            self._records.update(new)
        return list(new)

    async def upsert_tokens(self, records: list[TokenRecord]) -> None:
        await asyncio.to_thread(self._write, self._upsert, records)

    def _upsert(self, records: list[TokenRecord]) -> None:
        latest = {rec.token: _copy(rec) for rec in records}
        if latest:
            self._append({"op": "put", "records": [r.model_dump(mode="json") for r in latest.values()]})
            self._records.update(latest)

    async def update_tokens(self, updates: list[TokenUpdate]) -> None:
        await asyncio.to_thread(self._write, self._update, updates)

    def _update(self, updates: list[TokenUpdate]) -> None:
        staged: dict[str, TokenRecord] = {}
        applied: list[TokenUpdate] = []
        for upd in updates:
            current = staged.get(upd.token) or self._records.get(upd.token)
            if current is None:
                continue
            staged[upd.token] = upd.apply_to(current)  # validates before anything is written
            applied.append(upd)
        if applied:
            self._append({"op": "update", "updates": [u.model_dump(mode="json") for u in applied]})
            self._records.update(staged)

    async def delete_tokens(self, tokens: list[str]) -> int:
        return await asyncio.to_thread(self._write, self._delete, tokens)

    def _delete(self, tokens: list[str]) -> int:
        present = list(dict.fromkeys(t for t in map(normalize_token, tokens) if t in self._records))
        if present:
            self._append({"op": "delete", "tokens": present})
            for token in present:
                del self._records[token]
        return len(present)

    def _write(self, change: Any, arg: Any) -> Any:
        with self._locked(exclusive=True):
            self._refresh()
            self._drop_torn_tail()
            result = change(arg)
            if self._jr_entries >= self.compact_every or self._jr_offset >= self.compact_bytes:
                self._compact()
            return result

    # -- coordination --------------------------------------------------------------------
    def lock(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[bool]:
        check_lock_name(name)
        self.locks_dir.mkdir(parents=True, exist_ok=True)
        return file_lock(self.locks_dir / f"{name}.lock", timeout)

    async def purge(self) -> None:
        """Delete every stored file of this backend (tests and benchmarks only)."""

        def wipe() -> None:
            with self._locked(exclusive=True):
                for path in (self.tokens_path, self.config_path, self.config_version_path):
                    path.unlink(missing_ok=True)
                assert self._journal_fd is not None
                os.ftruncate(self._journal_fd, 0)
                self._reset_cache()

        await asyncio.to_thread(wipe)

    # -- the journal machinery (called with the tokens lock held) -------------------------
    @contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        with self._mutex:
            if self._journal_fd is None or self._tokens_lock_fd is None:
                raise StorageError("local storage is not open (call open() first)")
            fd = self._tokens_lock_fd
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _refresh(self) -> None:
        """Bring the in-memory records up to date with token.json + token.journal."""
        assert self._journal_fd is not None
        if not self._loaded or _sig(self.tokens_path) != self._snap_sig:
            self._load_snapshot()
        size = os.fstat(self._journal_fd).st_size
        if size == self._jr_offset:
            return
        try:
            if size < self._jr_offset:
                raise _Stale
            self._replay(size)
        except _Stale:
            self._load_snapshot()
            self._replay(os.fstat(self._journal_fd).st_size)

    def _load_snapshot(self) -> None:
        path = self.tokens_path
        self._loaded = False
        try:
            data = path.read_bytes()
            sig = _sig(path)
        except FileNotFoundError:
            data, sig = b"", None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror}") from None
        records, seq = self._parse_snapshot(data) if data.strip() else ({}, 0)
        self._records, self._seq, self._snap_sig = records, seq, sig
        self._jr_offset = self._jr_lines = self._jr_entries = 0
        self._loaded = True

    def _parse_snapshot(self, data: bytes) -> tuple[dict[str, TokenRecord], int]:
        where = str(self.tokens_path)
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            detail = f"invalid JSON: {exc.msg} (column {exc.colno})"
            raise CorruptDataError(where, exc.lineno, detail) from None
        if not isinstance(doc, dict):
            raise CorruptDataError(where, 1, "expected a JSON object")
        items: list[tuple[str | None, Any]]
        if isinstance(doc.get("tokens"), list):
            seq = doc.get("seq", 0)
            if not isinstance(seq, int) or seq < 0:
                line = _line_of(data, b'"seq"')
                raise CorruptDataError(where, line, "'seq' must be a non-negative integer")
            items = [(None, item) for item in doc["tokens"]]
        elif all(isinstance(v, list) for v in doc.values()):  # older form: {"<pool>": [...]}
            seq = 0
            items = [(pool, item) for pool, entries in doc.items() for item in entries]
        else:
            raise CorruptDataError(where, 1, "expected {\"tokens\": [...]} or {\"<pool>\": [...]}")
        records: dict[str, TokenRecord] = {}
        for index, (pool, item) in enumerate(items):
            if isinstance(item, str):
                item = {"token": item}
            if not isinstance(item, dict):
                raise CorruptDataError(where, None, f"token entry #{index + 1} is not an object")
            if pool is not None:
                item = {"pool": pool, **item}
            try:
                rec = TokenRecord.model_validate(item)
            except ValidationError as exc:
                raw = item.get("token")
                line = _line_of(data, orjson.dumps(raw)) if isinstance(raw, str) else None
                detail = f"token entry #{index + 1}: {describe_validation(exc)}"
                raise CorruptDataError(where, line, detail) from None
            records[rec.token] = rec
        return records, seq

    def _replay(self, size: int) -> None:
        """Apply journal lines between the cached offset and ``size``."""
        assert self._journal_fd is not None
        start = self._jr_offset
        buf = os.pread(self._journal_fd, size - start, start)
        end = buf.rfind(b"\n") + 1
        if end < len(buf):
            self._report_torn(start + end, len(buf) - end)
        where = str(self.journal_path)
        lineno = self._jr_lines
        for raw in buf[:end].split(b"\n")[:-1]:
            lineno += 1
            if not raw.strip():
                continue
            try:
                entry = orjson.loads(raw)
                seq = entry["seq"]
                if not isinstance(seq, int):
                    raise TypeError("seq is not an integer")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                if start:
                    raise _Stale from None
                raise CorruptDataError(where, lineno, f"unreadable journal entry: {exc}") from None
            if seq <= self._seq:
                continue  # already folded into the snapshot
            if seq != self._seq + 1:
                if start:
                    raise _Stale
                detail = f"journal sequence gap: expected {self._seq + 1}, got {seq}"
                raise CorruptDataError(where, lineno, detail)
            self._apply(entry, where, lineno)
            self._seq = seq
            self._jr_entries += 1
        self._jr_offset = start + end
        self._jr_lines = lineno

    def _apply(self, entry: dict[str, Any], where: str, lineno: int) -> None:
        try:
            op = entry["op"]
            if op == "put":
                for item in entry["records"]:
                    rec = TokenRecord.model_validate(item)
                    self._records[rec.token] = rec
            elif op == "update":
                for item in entry["updates"]:
                    upd = TokenUpdate.model_validate(item)
                    current = self._records.get(upd.token)
                    if current is not None:
                        self._records[upd.token] = upd.apply_to(current)
            elif op == "delete":
                for token in entry["tokens"]:
                    self._records.pop(token, None)
            else:
                raise ValueError(f"unknown op {op!r}")
        except ValidationError as exc:
            detail = f"invalid journal entry: {describe_validation(exc)}"
            raise CorruptDataError(where, lineno, detail) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(where, lineno, f"invalid journal entry: {exc!r}") from None

    def _report_torn(self, offset: int, length: int) -> None:
        if self._warned_torn != (offset, length):
            self._warned_torn = (offset, length)
            log.warning(
                "%s: ignoring an incomplete last entry (%d bytes at offset %d, line %d) - "
                "a writer crashed mid-write; earlier entries are intact",
                self.journal_path, length, offset, self._jr_lines + 1,
            )

    def _drop_torn_tail(self) -> None:
        """Cut an incomplete last line so the next append starts on a fresh line (writer only)."""
        assert self._journal_fd is not None
        size = os.fstat(self._journal_fd).st_size
        if size > self._jr_offset:
            log.warning(
                "%s: discarding %d bytes of an incomplete entry", self.journal_path, size - self._jr_offset
            )
            os.ftruncate(self._journal_fd, self._jr_offset)

    def _append(self, entry: dict[str, Any]) -> None:
        assert self._journal_fd is not None
        seq = self._seq + 1
        line = orjson.dumps({"seq": seq, **entry}) + b"\n"
        try:
            view = memoryview(line)
            while view:
                written = os.write(self._journal_fd, view)
                view = view[written:]
            if self.fsync_journal:
                os.fsync(self._journal_fd)
        except OSError as exc:
            os.ftruncate(self._journal_fd, self._jr_offset)
            raise StorageError(f"cannot append to {self.journal_path}: {exc.strerror}") from None
        self._seq = seq
        self._jr_offset += len(line)
        self._jr_lines += 1
        self._jr_entries += 1

    def _compact(self) -> None:
        """Fold the journal into a new token.json, then empty the journal."""
        assert self._journal_fd is not None
        doc = {
            "format": SNAPSHOT_FORMAT,
            "seq": self._seq,
            "tokens": [r.model_dump(mode="json") for r in self._records.values()],
        }
        try:
            _atomic_write(self.tokens_path, orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
            os.ftruncate(self._journal_fd, 0)
        except OSError as exc:
            raise StorageError(f"cannot write {self.tokens_path}: {exc.strerror}") from None
        self._snap_sig = _sig(self.tokens_path)
        self._jr_offset = self._jr_lines = self._jr_entries = 0
        log.debug("compacted %d tokens into %s (seq %d)", len(self._records), self.tokens_path, self._seq)

