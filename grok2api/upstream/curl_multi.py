"""An asyncio driver for one libcurl multi handle, on libcurl's ``socket_action`` API.

curl_cffi's ``AsyncCurl`` does the same job generically; on the gateway's hot path its costs
showed up per streamed chunk: every socket action schedules a fresh ``call_later`` timer (and a
negative timeout, libcurl's "delete the timer", becomes an immediate extra socket action), every
socket callback removes and re-adds the descriptor on the event loop, and every call allocates its
``int *`` out-parameters. This driver keeps one asyncio timer that it moves lazily, registers a
descriptor only when libcurl's interest in it changes, and reuses its out-parameters.

Transfers are any object with ``finished(code)``; :meth:`CurlMulti.add` hands one over together
with its easy handle, and the driver calls ``finished`` with the libcurl result code once the
transfer is done (the handle is already detached from the multi handle by then).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Protocol

from curl_cffi import CurlError
from curl_cffi._wrapper import ffi, lib
from curl_cffi.const import CurlMOpt

log = logging.getLogger(__name__)

_SOCKET_TIMEOUT = -1  # CURL_SOCKET_TIMEOUT: "no socket, a timeout expired"
_POLL_IN, _POLL_OUT, _POLL_REMOVE = 1, 2, 4  # CURL_POLL_*
_CSELECT_IN, _CSELECT_OUT = 1, 2  # CURL_CSELECT_*
_MSG_DONE = 1  # CURLMSG_DONE
EARLY_S = 0.001  # the event loop's timers have millisecond resolution


class Transfer(Protocol):
    def finished(self, code: int) -> None: ...


class LazyTimer:
    """One asyncio timer for a deadline that mostly moves later (libcurl's timeout, idle waits).

    :meth:`arm` reschedules only when the new deadline is earlier than the armed one; a later
    deadline keeps the armed timer, and the callback, finding it fired early, arms it again.
    That is one timer handle per deadline that really moved earlier, not one per update.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0

    def arm(self, due: float) -> None:
        """Make sure the callback runs at ``due`` (loop time) or earlier."""
        if self._handle is not None:
            if self._at <= due + EARLY_S:
                return
            self._handle.cancel()
        self._at = due
        self._handle = self._loop.call_at(due, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self._callback()


class CurlMulti:
    """One ``CURLM`` driven by an asyncio event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._multi: Any = lib.curl_multi_init()
        self._running = ffi.new("int *")
        self._queued = ffi.new("int *")
        self._transfers: dict[Any, Transfer] = {}  # easy handle pointer -> its transfer
        self._fds: dict[int, int] = {}  # descriptor -> CURL_POLL_* bits registered on the loop
        self._deadline: float | None = None  # when libcurl wants socket_action(TIMEOUT)
        self._timer = LazyTimer(loop, self._on_timer_due)
        # The C callbacks must stay referenced for as long as the multi handle lives.
        self._socket_cb = ffi.callback("int(void *, int, int, void *, void *)", self._on_socket,
                                       error=-1, onerror=_log_callback_error)
        self._timer_cb = ffi.callback("int(void *, long, void *)", self._on_timer,
                                      error=-1, onerror=_log_callback_error)
        lib.curl_multi_setopt(self._multi, CurlMOpt.SOCKETFUNCTION, self._socket_cb)
        lib.curl_multi_setopt(self._multi, CurlMOpt.TIMERFUNCTION, self._timer_cb)

    @property
    def active(self) -> int:
        """Transfers added and not yet finished or removed."""
        return len(self._transfers)

    def add(self, easy: Any, transfer: Transfer) -> None:
        """Start ``easy`` (a ``CURL *``); ``transfer.finished(code)`` is called when it ends."""
        if self._multi is None:
            raise CurlError("the connection pool is closed")
        self._transfers[easy] = transfer
        code = lib.curl_multi_add_handle(self._multi, easy)
        if code:
            del self._transfers[easy]
            raise CurlError(f"could not start the transfer (curl multi error {code})")
        # libcurl now asks (timer callback, 0 ms) for a timeout action to start the transfer. Doing it
        # here sends the request in this loop iteration instead of the next one: on a busy loop
        # that is one full iteration less before the first byte.
        self._action(_SOCKET_TIMEOUT, 0)

    def remove(self, easy: Any) -> None:
        """Abort a transfer that has not finished (its ``finished`` is not called)."""
        if self._transfers.pop(easy, None) is not None and self._multi is not None:
            lib.curl_multi_remove_handle(self._multi, easy)

    def close(self) -> None:
        """Abort every transfer (each gets ``finished(CURLE_ABORTED_BY_CALLBACK)``) and free the handle."""
        if self._multi is None:
            return
        pending = list(self._transfers.items())
        self._transfers.clear()
        for easy, transfer in pending:
            lib.curl_multi_remove_handle(self._multi, easy)
            transfer.finished(42)  # CURLE_ABORTED_BY_CALLBACK
        lib.curl_multi_cleanup(self._multi)
        self._multi = None
        for fd in list(self._fds):
            self._watch(fd, 0)
        self._timer.cancel()
        self._deadline = None

    # -- libcurl callbacks ----------------------------------------------------------------
    def _on_socket(self, easy: Any, fd: int, what: int, clientp: Any, socketp: Any) -> int:
        self._watch(fd, 0 if what == _POLL_REMOVE else what & (_POLL_IN | _POLL_OUT))
        return 0

    def _watch(self, fd: int, want: int) -> None:
        have = self._fds.get(fd, 0)
        if want == have:
            return
        loop = self._loop
        changed = have ^ want
        if changed & _POLL_IN:
            if want & _POLL_IN:
                loop.add_reader(fd, self._action, fd, _CSELECT_IN)
            else:
                loop.remove_reader(fd)
        if changed & _POLL_OUT:
            if want & _POLL_OUT:
                loop.add_writer(fd, self._action, fd, _CSELECT_OUT)
            else:
                loop.remove_writer(fd)
        if want:
            self._fds[fd] = want
        else:
            del self._fds[fd]

    def _on_timer(self, multi: Any, timeout_ms: int, clientp: Any) -> int:
        # Never call back into libcurl from here: only note when socket_action(TIMEOUT) is due.
        if timeout_ms < 0:
            self._deadline = None  # libcurl deletes its timer; a pending asyncio timer finds nothing to do
            return 0
        self._deadline = due = self._loop.time() + timeout_ms / 1000
        self._timer.arm(due)
        return 0

    def _on_timer_due(self) -> None:
        due = self._deadline
        if due is None:
            return
        if due > self._loop.time() + EARLY_S:  # the deadline moved later since the timer was armed
            self._timer.arm(due)
            return
        self._deadline = None
        self._action(_SOCKET_TIMEOUT, 0)

    # -- driving libcurl ------------------------------------------------------------------
    def _action(self, fd: int, events: int) -> None:
        multi = self._multi
        if multi is None:
            return
        code = lib.curl_multi_socket_action(multi, fd, events, self._running)
        if code:
            log.warning("curl_multi_socket_action failed with multi error %d", code)
        while True:
            msg = lib.curl_multi_info_read(multi, self._queued)
            if msg == ffi.NULL:
                return
            if msg.msg != _MSG_DONE:
                continue
            easy = msg.easy_handle
            result = msg.data.result  # read before remove_handle frees the message
            transfer = self._transfers.pop(easy, None)
            lib.curl_multi_remove_handle(multi, easy)
            if transfer is not None:
                transfer.finished(result)


def _log_callback_error(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    log.error("curl multi callback failed: %s: %s", exc_type.__name__, exc)
    return None


__all__ = ["CurlMulti", "EARLY_S", "LazyTimer", "Transfer"]
