"""The runtime ⇄ fork server wire: descriptors arrive close-on-exec, pipes read to EOF, reports."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

import pytest

from orchestrator.runtime.process import wire


def test_received_descriptors_are_close_on_exec() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        wire.send(left, b"hello", [w])
        data, fds = wire.receive(right)
        assert data == b"hello" and len(fds) == 1
        assert fcntl.fcntl(fds[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        os.close(fds[0])
        left.close()
        assert wire.receive(right) == (b"", [])
    finally:
        for fd in (r, w):
            os.close(fd)
        right.close()


def test_read_until_eof_and_its_timeout() -> None:
    r, w = os.pipe()
    os.write(w, b"abc")
    with pytest.raises(TimeoutError):
        wire.read_until_eof(r, timeout=0.01)  # a writer still holds the pipe open
    os.write(w, b"def")
    os.write(w, b"ghi")
    os.close(w)
    assert wire.read_until_eof(r, timeout=1) == b"defghi"
    os.close(r)


def test_child_reports_are_parsed_and_garbage_is_named() -> None:
    report = wire.child_report("exec", "x: not found", 2)
    assert wire.parse_child_report(report) == ("exec", "x: not found", 2)
    assert wire.parse_child_report(report[:-3]) == ("setup", "the child died without a readable report", 0)
    assert wire.parse_child_report(b"\x00garbage")[0] == "setup"
    assert wire.parse_child_report(b"")[0] == "setup"
    assert wire.parse_child_report(wire.child_report("mount", "caf\u00e9 \n", 13)) == (
        "mount",
        "caf\u00e9 \n",
        13,
    )


def test_sockets_made_without_the_socket_module_pass_descriptors_both_ways() -> None:
    """The fork server's side uses ``_socket`` objects, the runtime's ``socket.socket`` ones."""
    ours, theirs_fd = wire.seqpacket_pair()
    theirs = socket.socket(fileno=theirs_fd.detach())
    r, w = os.pipe()
    try:
        wire.send(ours, b"one", [w])
        data, fds = wire.receive(theirs)
        assert data == b"one" and len(fds) == 1 and fcntl.fcntl(fds[0], fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        os.close(fds[0])
        wire.send(theirs, b"two")
        assert wire.receive(ours) == (b"two", [])
    finally:
        for fd in (r, w):
            os.close(fd)
        ours.close()
        theirs.close()


def test_a_listener_accepts_close_on_exec_connections(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    listener = wire.seqpacket_listener()
    try:
        listener.bind(path)
        listener.listen(1)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        client.connect(path)
        conn = wire.accept(listener)
        assert fcntl.fcntl(conn.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert fcntl.fcntl(listener.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        client.send(b"hello")
        assert wire.receive(conn) == (b"hello", [])
        again = wire.socket_of(os.dup(conn.fileno()))
        wire.send(again, b"back")
        assert client.recv(10) == b"back"
        for sock in (client, conn, again):
            sock.close()
    finally:
        listener.close()
