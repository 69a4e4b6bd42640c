"""OpenAI messages → one Grok ``message`` string plus the attachments to upload (chat.md §2.4, §2.5).

V1 flattening: each message's text parts joined by ``\\n`` (each stripped);
messages without text skipped; the **last** ``user`` message is emitted bare,
every other one as ``<role>: <text>``; all joined by a blank line. V2 additions:
role ``tool`` and assistant ``tool_calls`` are written into the history; with no
text at all but attachments, the message is ``Refer to the following content:``.

Attachments (files first, then images, like V1/V2) are returned in order; the
caller uploads them (data URIs via :func:`decode_data_uri`, https URLs through the
gateway's hardened fetcher) and puts the ids into ``fileAttachments``.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

import orjson

NO_TEXT_PROMPT = "Refer to the following content:"
_ROLES = frozenset({"developer", "system", "user", "assistant", "tool"})
_DATA_URI_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[^;,]*)*)(;base64)?,", re.I)
_B64_CHARS = re.compile(r"^[A-Za-z0-9+/=_-]+$")


class InvalidMessageError(ValueError):
    """Bad chat input. ``param`` is the OpenAI-style path (``messages[2].content[1].image_url``)."""

    def __init__(self, message: str, param: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(slots=True)
class Attachment:
    """Something to upload before the chat call."""

    kind: Literal["image", "file", "audio"]
    source: str  # ``https://...`` URL or ``data:<mime>;base64,...`` URI
    param: str  # where it came from, for error messages
    filename: str | None = None

    @property
    def is_data_uri(self) -> bool:
        return self.source[:5].lower() == "data:"


@dataclass(slots=True)
class FlatPrompt:
    message: str
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def files(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind != "image"]

    @property
    def images(self) -> list[Attachment]:
        return [a for a in self.attachments if a.kind == "image"]


def decode_data_uri(uri: str, max_bytes: int | None = None, param: str = "data") -> tuple[str, bytes]:
    """``data:<mime>;base64,<b64>`` → (mime, bytes). ``;base64`` is mandatory; whitespace is ignored."""
    m = _DATA_URI_RE.match(uri)
    if not m:
        raise InvalidMessageError("invalid data URI", param, "invalid_media")
    if not m.group(3):
        raise InvalidMessageError("data URI must be base64-encoded (';base64,')", param, "invalid_media")
    mime = (m.group(1) or "application/octet-stream").lower()
    payload = "".join(uri[m.end():].split())
    if max_bytes is not None and len(payload) * 3 // 4 > max_bytes + 3:
        raise InvalidMessageError(f"file larger than {max_bytes} bytes", param, "file_too_large")
    try:
        pad = "=" * (-len(payload) % 4)
        data = base64.b64decode(payload + pad, altchars=b"-_" if ("-" in payload or "_" in payload) else None,
                                validate=True)
    except (binascii.Error, ValueError):
        raise InvalidMessageError("data URI payload is not valid base64", param, "invalid_media") from None
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidMessageError(f"file larger than {max_bytes} bytes", param, "file_too_large")
    if not data:
        raise InvalidMessageError("data URI is empty", param, "invalid_media")
    return mime, data


def file_name_for(mime: str, name: str | None = None) -> str:
    """``file.<subtype>`` (``file.png``, ``file.pdf``) unless a name is given."""
    if name:
        return name
    sub = mime.split("/", 1)[-1].split(";", 1)[0].split("+", 1)[0] or "bin"
    if sub == "octet-stream":
        sub = "bin"
    return f"file.{sub}"


def _media_source(value: Any, param: str, *, allow_bare_b64_mime: str | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidMessageError("media value must be a non-empty string", param, "invalid_media")
    v = value.strip()
    low = v[:8].lower()
    if low.startswith("https://"):
        return v
    if low.startswith("data:"):
        if not _DATA_URI_RE.match(v) or ";base64," not in v[:200].lower():
            raise InvalidMessageError("data URI must look like data:<mime>;base64,<data>", param, "invalid_media")
        return v
    if low.startswith("http://"):
        raise InvalidMessageError("only https:// URLs are accepted", param, "invalid_media")
    if allow_bare_b64_mime and _B64_CHARS.match(v[:4096].replace("\n", "")):
        return f"data:{allow_bare_b64_mime};base64,{v}"
    raise InvalidMessageError("media must be an https:// URL or a data:<mime>;base64,... URI", param,
                              "invalid_media")


def _as_dict(m: Any) -> Mapping[str, Any]:
    if isinstance(m, Mapping):
        return m
    dump = getattr(m, "model_dump", None)
    if dump is not None:
        return dump(exclude_none=True)
    raise InvalidMessageError("message must be an object", "messages")


_AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
               "m4a": "audio/mp4", "webm": "audio/webm", "pcm16": "audio/pcm"}


def _parts(content: Any, role: str, base: str, files: list[Attachment], images: list[Attachment]) -> list[str]:
    """Text pieces of one message's content; media parts appended to ``files``/``images``."""
    if content is None:
        return []
    if isinstance(content, str):
        t = content.strip()
        return [t] if t else []
    if isinstance(content, Mapping):
        content = [content]
    if not isinstance(content, list):
        raise InvalidMessageError("content must be a string or a list of parts", f"{base}.content")
    texts: list[str] = []
    for j, part in enumerate(content):
        p = f"{base}.content[{j}]"
        if not isinstance(part, Mapping):
            part = _as_dict(part)
        ptype = part.get("type")
        if ptype in ("text", "input_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidMessageError("text part needs a string 'text'", f"{p}.text")
            t = text.strip()
            if t:
                texts.append(t)
            continue
        if role != "user":
            raise InvalidMessageError(f"role '{role}' may only carry text parts", f"{p}.type")
        if ptype == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, Mapping) else iu
            images.append(Attachment("image", _media_source(url, f"{p}.image_url"), f"{p}.image_url"))
        elif ptype == "input_audio":
            ia = part.get("input_audio")
            if not isinstance(ia, Mapping):
                raise InvalidMessageError("input_audio part needs an object", f"{p}.input_audio")
            fmt = str(ia.get("format") or "").lower()
            src = _media_source(ia.get("data"), f"{p}.input_audio.data",
                                allow_bare_b64_mime=_AUDIO_MIME.get(fmt, f"audio/{fmt}") if fmt else None)
            files.append(Attachment("audio", src, f"{p}.input_audio",
                                    f"audio.{fmt}" if fmt else None))
        elif ptype == "file":
            f = part.get("file")
            if not isinstance(f, Mapping):
                raise InvalidMessageError("file part needs an object", f"{p}.file")
            if f.get("file_data") is None:
                if f.get("file_id"):
                    raise InvalidMessageError("file_id references are not supported; send file_data",
                                              f"{p}.file.file_id")
                raise InvalidMessageError("file part needs file_data", f"{p}.file.file_data")
            fname = f.get("filename")
            guessed = None
            if fname and "." in fname:
                ext = fname.rsplit(".", 1)[1].lower()
                guessed = {"pdf": "application/pdf", "txt": "text/plain", "csv": "text/csv",
                           "json": "application/json", "md": "text/markdown", "png": "image/png",
                           "jpg": "image/jpeg", "jpeg": "image/jpeg"}.get(ext, "application/octet-stream")
            src = _media_source(f.get("file_data"), f"{p}.file.file_data",
                                allow_bare_b64_mime=guessed or ("application/octet-stream" if fname else None))
            files.append(Attachment("file", src, f"{p}.file", fname))
        else:
            raise InvalidMessageError(f"unsupported content part type {ptype!r}", f"{p}.type")
    return texts


def _tool_call_lines(calls: Any, base: str, tools_present: bool) -> list[str]:
    lines: list[str] = []
    if not isinstance(calls, list):
        raise InvalidMessageError("tool_calls must be a list", f"{base}.tool_calls")
    for k, call in enumerate(calls):
        call = call if isinstance(call, Mapping) else _as_dict(call)
        fn = call.get("function")
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise InvalidMessageError("tool call needs function.name", f"{base}.tool_calls[{k}].function")
        args = fn.get("arguments")
        if args is None:
            args = "{}"
        if not isinstance(args, str):
            args = orjson.dumps(args).decode()
        if tools_present:
            try:
                parsed: Any = orjson.loads(args)
            except orjson.JSONDecodeError:
                parsed = args
            lines.append("<tool_call>" + orjson.dumps({"name": fn["name"], "arguments": parsed}).decode()
                         + "</tool_call>")
        else:
            lines.append(f"[tool_call] {fn['name']} {args}")
    return lines


def flatten_messages(messages: Iterable[Any], *, tools_present: bool = False) -> FlatPrompt:
    """Flatten OpenAI ``messages`` (dicts or pydantic models) into a :class:`FlatPrompt`.

    Raises :class:`InvalidMessageError` with a ``param`` path on bad input.
    """
    items = [_as_dict(m) for m in messages]
    if not items:
        raise InvalidMessageError("messages must not be empty", "messages")
    files: list[Attachment] = []
    images: list[Attachment] = []
    entries: list[tuple[str, str]] = []  # (role label, text)
    tool_names: dict[str, str] = {}
    for i, m in enumerate(items):
        base = f"messages[{i}]"
        role = m.get("role")
        if role not in _ROLES:
            raise InvalidMessageError(f"unsupported role {role!r}", f"{base}.role")
        texts = _parts(m.get("content"), role, base, files, images)
        if role == "assistant" and m.get("tool_calls"):
            for call in m["tool_calls"]:
                c = call if isinstance(call, Mapping) else _as_dict(call)
                fn = c.get("function") or {}
                if c.get("id") and isinstance(fn, Mapping) and fn.get("name"):
                    tool_names[str(c["id"])] = str(fn["name"])
            texts.extend(_tool_call_lines(m["tool_calls"], base, tools_present))
        text = "\n".join(texts)
        if not text:
            continue
        if role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            name = m.get("name") or tool_names.get(call_id) or "unknown"
            if tools_present:
                entries.append(("user", f"tool ({name}, {call_id}): {text}"))
            else:
                entries.append((f"tool[{name}]#{call_id}", text))
            continue
        entries.append((role, text))
    last_user = -1
    for idx in range(len(entries) - 1, -1, -1):
        if entries[idx][0] == "user":
            last_user = idx
            break
    out = [text if idx == last_user else f"{label}: {text}" for idx, (label, text) in enumerate(entries)]
    message = "\n\n".join(out)
    attachments = files + images
    if not message and attachments:
        message = NO_TEXT_PROMPT
    if not message:
        raise InvalidMessageError("messages contain no text or attachments", "messages")
    return FlatPrompt(message, attachments)
