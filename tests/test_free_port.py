"""The harness's ports for daemons that bind later: nothing else on the machine can take them
in the meantime (F19 restarts rebind the same status port)."""

from __future__ import annotations

import socket

from chaos.harness import _ephemeral_floor, free_port


def test_free_port_is_below_the_ephemeral_range_so_no_outbound_connection_can_take_it() -> None:
    ports = [free_port() for _ in range(50)]
    assert all(1024 <= p < _ephemeral_floor() for p in ports), ports
    assert len(set(ports)) == 50, "a port is handed out once per process"


def test_free_port_skips_a_port_someone_is_listening_on(monkeypatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", free_port()))
        busy.listen()
        taken = busy.getsockname()[1]
        monkeypatch.setattr("chaos.harness._handed_out", set())
        assert taken not in {free_port() for _ in range(200)}


def test_xdist_workers_draw_from_disjoint_slices(monkeypatch) -> None:
    slices = []
    for worker in ("gw0", "gw1", "gw2"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        slices.append({free_port() for _ in range(20)})
    assert not (slices[0] & slices[1] or slices[1] & slices[2] or slices[0] & slices[2])
    assert max(slices[1]) < min(slices[0]) and max(slices[2]) < min(slices[1])
