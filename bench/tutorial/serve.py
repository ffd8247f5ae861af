"""bench/tutorial/serve.py: uvicorn's command line (the same arguments as
python3 -m uvicorn), with --workers N answering as fast as one process.

Why: with --workers N, uvicorn binds the listening socket itself
(Config.bind_socket) and leaves its proto at 0; the workers' accepted
sockets inherit it, and asyncio turns TCP_NODELAY on only for sockets whose
proto is IPPROTO_TCP. So with more than one worker, Nagle stays on and
every keep-alive request after the first waits for the client's delayed
ACK: some 40 ms on Linux (uvicorn issue #3149; measured here: 165 req/s at
8 connections with 4 workers, 600 with 1). The tutorial runs one process
(uvicorn main:app), which does not have the bug; make bench gives its app
as many workers as the service's pool, so this puts them on the footing
of one process each, rather than charging the tutorial app for a bug of
uvicorn's multi-process mode.

The fix is that of the issue's pull requests: the listening socket, once
bound, is wrapped again with proto IPPROTO_TCP (same file descriptor,
same address). Nothing else of uvicorn changes.
"""

import socket

import uvicorn.config
import uvicorn.main

_bind_socket = uvicorn.config.Config.bind_socket


def bind_socket_tcp(self):
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        inheritable = sock.get_inheritable()
        sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP,
                             fileno=sock.detach())
        sock.set_inheritable(inheritable)
    return sock


uvicorn.config.Config.bind_socket = bind_socket_tcp

if __name__ == "__main__":
    uvicorn.main.main()
