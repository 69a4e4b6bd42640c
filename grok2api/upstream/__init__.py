"""The Grok upstream client: headers, statsig, transport, chat stream, uploads, quota, assets, account.

Typical worker use::

    client = GrokClient(UpstreamSettings(...))
    stream = await client.open_chat(token, build_chat_payload(spec, prompt.message))
    async for batch in stream.batches(): ...
"""

from grok2api.upstream.chat import ChatStream, VideoOptions, build_chat_payload, open_chat
from grok2api.upstream.client import GrokClient
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.messages import Attachment, FlatPrompt, InvalidMessageError, flatten_messages
from grok2api.upstream.settings import UpstreamSettings

__all__ = [
    "Attachment", "ChatStream", "ErrorKind", "FlatPrompt", "GrokClient", "InvalidMessageError", "UpstreamError",
    "UpstreamSettings", "VideoOptions", "build_chat_payload", "flatten_messages", "open_chat",
]
