"""The shared test helpers that other tiers lean on: a port they hand to a server must stay theirs."""

from __future__ import annotations

import socket

import support


def test_free_port_is_below_the_range_outgoing_connections_take_source_ports_from() -> None:
    ports = [support.free_port() for _ in range(50)]
    assert all(20000 <= port < support._ephemeral_low() for port in ports)


def test_free_port_never_hands_out_a_port_twice() -> None:
    ports = [support.free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_free_port_skips_a_port_something_listens_on() -> None:
    busy = []
    try:
        # Hold a good share of the range so that a skip-free picker would hit one of them.
        for port in range(20000, 20000 + 2000):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()
                continue
            sock.listen()
            busy.append(sock)
        held = {sock.getsockname()[1] for sock in busy}
        original = support._PORTS_HIGH
        support._PORTS_HIGH = 20000 + 2100
        try:
            ports = [support.free_port() for _ in range(20)]
        finally:
            support._PORTS_HIGH = original
        assert not held & set(ports)
        for port in ports:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port))
    finally:
        for sock in busy:
            sock.close()
