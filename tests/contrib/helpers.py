"""Helpers of the integration tests."""

from __future__ import annotations

import socket


def closed_port_url(userinfo: str = "postgres") -> str:
    """A URL whose port has nothing listening (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql://{userinfo}@127.0.0.1:{port}/postgres"
