"""Waiting on several rstcp sockets at once, the selectors way.

``RstcpSelector`` implements ``selectors.BaseSelector`` over ``rs_poll``, so
code written for ``selectors.DefaultSelector`` works with rstcp sockets::

    sel = rstcp.selectors.RstcpSelector()
    sel.register(listener, selectors.EVENT_READ, data="accept")
    for key, events in sel.select(timeout=1.0):
        ...

It waits on rstcp descriptors only: kernel sockets, pipes and files cannot
be registered with it (their numbers would be taken as rstcp descriptors).
"""

from __future__ import annotations

import ctypes
import math
import time
from selectors import EVENT_READ, EVENT_WRITE, BaseSelector, SelectorKey
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from . import _lib
from ._lib import lib

__all__ = ["RstcpSelector", "EVENT_READ", "EVENT_WRITE", "SelectorKey"]

_POLLIN = 0x001
_POLLOUT = 0x004


def _fd_of(fileobj: Any) -> int:
    if isinstance(fileobj, int):
        fd = fileobj
    else:
        try:
            fd = int(fileobj.fileno())
        except (AttributeError, TypeError, ValueError):
            raise ValueError(f"Invalid file object: {fileobj!r}") from None
    if fd < 0:
        raise ValueError(f"Invalid file descriptor: {fd}")
    return fd


class _KeyMap(Mapping[Any, SelectorKey]):
    """The read-only mapping get_map() returns: file object -> key."""

    def __init__(self, selector: "RstcpSelector") -> None:
        self._selector = selector

    def __len__(self) -> int:
        return len(self._selector._keys)

    def __getitem__(self, fileobj: Any) -> SelectorKey:
        fd = self._selector._lookup(fileobj)
        try:
            return self._selector._keys[fd]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._selector._keys)


class RstcpSelector(BaseSelector):
    """A selector over rstcp descriptors (``rs_poll``)."""

    def __init__(self) -> None:
        self._keys: Dict[int, SelectorKey] = {}
        self._map = _KeyMap(self)

    def _lookup(self, fileobj: Any) -> int:
        try:
            return _fd_of(fileobj)
        except ValueError:
            # A closed socket (fileno() -1): find it by identity.
            for key in self._keys.values():
                if key.fileobj is fileobj:
                    return key.fd
            raise

    def register(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Watches ``fileobj`` (an rstcp socket or descriptor) for
        EVENT_READ and/or EVENT_WRITE."""
        if not events or events & ~(EVENT_READ | EVENT_WRITE):
            raise ValueError(f"Invalid events: {events!r}")
        key = SelectorKey(fileobj, self._lookup(fileobj), events, data)
        if key.fd in self._keys:
            raise KeyError(f"{fileobj!r} (FD {key.fd}) is already registered")
        self._keys[key.fd] = key
        return key

    def unregister(self, fileobj: Any) -> SelectorKey:
        """Stops watching ``fileobj``; returns its key."""
        try:
            return self._keys.pop(self._lookup(fileobj))
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None

    def modify(self, fileobj: Any, events: int, data: Any = None) -> SelectorKey:
        """Changes the events or data watched for ``fileobj``."""
        try:
            key = self._keys[self._lookup(fileobj)]
        except KeyError:
            raise KeyError(f"{fileobj!r} is not registered") from None
        if events != key.events:
            self.unregister(fileobj)
            return self.register(fileobj, events, data)
        if data != key.data:
            key = key._replace(data=data)
            self._keys[key.fd] = key
        return key

    def select(self, timeout: Optional[float] = None) -> List[Tuple[SelectorKey, int]]:
        """Waits until a registered socket is ready, or ``timeout`` seconds
        (None: no limit; 0 or less: just look). Returns (key, events)
        pairs. A signal handler runs during the wait (its exception
        propagates); otherwise the wait goes on (PEP 475)."""
        keys = list(self._keys.values())
        fds = (_lib.PollFd * max(len(keys), 1))()
        for i, key in enumerate(keys):
            fds[i].fd = key.fd
            fds[i].events = (_POLLIN if key.events & EVENT_READ else 0) | (
                _POLLOUT if key.events & EVENT_WRITE else 0
            )
        deadline = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            if deadline is None:
                ms = -1
            else:
                ms = min(max(math.ceil((deadline - time.monotonic()) * 1000), 0), 2**31 - 1)
            r = lib.rs_poll(fds, len(keys), ms)
            if r >= 0:
                break
            err = ctypes.get_errno()
            if err != _lib.EINTR:
                _lib.raise_errno(err)
            _lib.check_signals()
        ready = []
        for i, key in enumerate(keys):
            rev = fds[i].revents
            if not rev:
                continue
            # As selectors.PollSelector: errors and hang-ups wake both sides.
            events = (EVENT_WRITE if rev & ~_POLLIN else 0) | (EVENT_READ if rev & ~_POLLOUT else 0)
            if key.events & events:
                ready.append((key, key.events & events))
        return ready

    def close(self) -> None:
        """Forgets every registration (the sockets stay open)."""
        self._keys.clear()

    def get_map(self) -> Mapping[Any, SelectorKey]:
        """The registered file objects and their keys."""
        return self._map
