"""Can the server listen where it was told? Asked before gRPC, HTTP or /metrics binds; and
the HTTP listener's own socket.

gRPC's Python server sets SO_REUSEPORT by default, so a second server on a taken port would
bind beside the first and share its traffic; the server turns that off, and this check
turns a failed bind into one line that says why (gRPC's own error says only "Failed to bind").
"""

from __future__ import annotations

import errno
import socket

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
    bare = host.strip("[]")
    try:
        addresses = socket.getaddrinfo(
            bare or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({flags}): {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            # As gRPC and http.server do: a port whose old connections linger is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                template = _REASONS.get(exc.errno or 0, exc.strerror or str(exc))
                reason = template.format(host=bare, port=port)
                raise ConfigError(f"cannot listen on {host}:{port} ({flags}): {reason}") from None


def listening_socket(host: str, port: int, flags: str) -> socket.socket:
    """A bound, listening, non-blocking TCP socket; ConfigError naming `flags` if it cannot."""
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it a keep-alive request waited 40 ms (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((bare, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({flags}): {exc.strerror}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock
