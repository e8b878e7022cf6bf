"""How `rag serve` sheds abusive connections, below the app: a deadline for the request line and
headers, and a cap on open connections.

uvicorn's own settings do part of it (rag.servers.http.make_server passes them): `limit_concurrency`
answers 503 once more requests are in flight than the cap, `timeout_keep_alive` closes idle
keep-alive connections, `h11_max_incomplete_event_size` bounds the headers. What it lacks: a
client that connects and then trickles its headers (or sends nothing) is never timed out, and
`limit_concurrency` only acts once a whole request has arrived, so such clients hold their file
descriptors until the process runs out (600 of them did, and asyncio then logged every failed
accept). `guarded_protocol` adds both to uvicorn's h11 protocol: a connection over the cap is
answered 503 and closed at once, and one that has not sent its headers within `header_seconds`
is answered 408 and closed. The body's deadline is the app's (rag.servers.wire.read_json).
"""

from __future__ import annotations

import resource

from rag.servers.wire import Limits

# Descriptors kept free for what the process itself opens (the index, the model, logs).
RESERVED_DESCRIPTORS = 64


def connection_cap(limits: Limits) -> int:
    """The connection cap, kept below the process's file descriptor limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return limits.max_connections
    return max(1, min(limits.max_connections, soft - RESERVED_DESCRIPTORS))


def _response(status: str, message: str) -> bytes:
    body = ('{"error": {"message": "%s", "type": "server_error", "param": null, "code": null}}' % message).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n").encode() + body


TOO_MANY = _response("503 Service Unavailable", "too many connections: try again in a moment")
TOO_SLOW = _response("408 Request Timeout", "the request headers took too long to arrive")


def guarded_protocol(limits: Limits):
    """uvicorn's h11 protocol with the header deadline and the connection cap of `limits`."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    cap = connection_cap(limits)

    class GuardedH11Protocol(H11Protocol):
        _header_timer = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > cap:
                transport.write(TOO_MANY)
                transport.close()
                return
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                return
            if self._waiting_for_headers():
                if self._header_timer is None:  # a new request started on a kept-alive connection
                    self._arm_header_timer()
            else:
                self._cancel_header_timer()

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _waiting_for_headers(self) -> bool:
            return self.conn.their_state is h11.IDLE and self.conn.our_state is h11.IDLE

        def _arm_header_timer(self) -> None:
            self._header_timer = self.loop.call_later(limits.header_seconds, self._headers_too_slow)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._waiting_for_headers() and not self.transport.is_closing():
                self.transport.write(TOO_SLOW)
                self.transport.close()

    return GuardedH11Protocol
