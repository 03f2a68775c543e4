"""Loaded by every Python process started with this folder on PYTHONPATH (the e2e offline test).

Installs an audit hook that refuses any socket connection to a non-loopback address and records
the attempt in $SALESOPS_NETGUARD_LOG, so a test can prove a full run needs no network.
"""

import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("SALESOPS_NETGUARD_LOG")
# The machine's own name resolves locally (/etc/hosts); libraries look it up for log records.
_LOCAL_NAMES = {"localhost", "", socket.gethostname(), socket.getfqdn()}


def _is_loopback(host: str) -> bool:
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _hook(event: str, args: tuple) -> None:
    if event not in ("socket.connect", "socket.getaddrinfo", "socket.sendto"):
        return
    if event == "socket.getaddrinfo":
        host = args[0]
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or _is_loopback(str(host)):
            return
        target = f"getaddrinfo {host}"
    else:
        addr = args[1]
        if not isinstance(addr, tuple):  # AF_UNIX path
            return
        if _is_loopback(str(addr[0])):
            return
        target = f"{event} {addr!r}"
    if _LOG:
        with open(_LOG, "a") as fh:
            fh.write(f"{os.getpid()} {sys.argv[:2]} {target}\n")
    raise ConnectionRefusedError(f"salesops netguard: network access outside loopback: {target}")


sys.addaudithook(_hook)
