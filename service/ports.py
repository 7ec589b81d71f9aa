"""Can the server listen where it was told? Asked before gRPC, HTTP or /metrics binds; and
the HTTP listener's own socket.

gRPC's Python server sets SO_REUSEPORT by default, so a second server on a taken port would
bind beside the first and share its traffic; the server turns that off, and this check
turns a failed bind into one line that says why (gRPC's own error says only "Failed to bind").
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from service.config import ConfigError

_REASONS = {
    errno.EADDRINUSE: "port {port} is already in use (is another server running there?)",
    errno.EADDRNOTAVAIL: "{host} is not an address of this machine",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


def check_can_listen(host: str, port: int, flags: str) -> None:
    """Raise ConfigError naming `flags` unless a listener could bind host:port now."""
    if port == 0:
        return  # any free port: the OS picks one
    for address in _addresses(host, port, flags):
        _bound(address, host, port, flags).close()


def listening_socket(host: str, port: int, flags: str) -> socket.socket:
    """A bound, listening, non-blocking TCP socket on host:port's first address; ConfigError
    naming `flags`, with check_can_listen's reasons, if it cannot."""
    sock = _bound(_addresses(host, port, flags)[0], host, port, flags)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


_Address = tuple[socket.AddressFamily, Any]


def _addresses(host: str, port: int, flags: str) -> list[_Address]:
    try:
        found = socket.getaddrinfo(
            host.strip("[]") or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({flags}): {exc.strerror}") from None
    return [(family, address) for family, _, _, _, address in found]


def _bound(address: _Address, host: str, port: int, flags: str) -> socket.socket:
    family, where = address
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive request waited 40 ms (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # As gRPC and http.server do: a port whose old connections linger is free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(where)
    except OSError as exc:
        sock.close()
        template = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
        reason = template.format(host=host.strip("[]"), port=port)
        raise ConfigError(f"cannot listen on {host}:{port} ({flags}): {reason}") from None
    return sock
