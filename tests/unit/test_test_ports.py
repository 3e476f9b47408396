"""The suite's own port picker: one config never names a port twice."""

import socket

from tests.support.stack import free_port, free_sip_port


def test_a_port_is_handed_out_once_per_test_process() -> None:
    # CI once wrote web.port equal to asterisk.ami_port: the kernel gave a
    # just-closed ephemeral port again.
    ports = [free_port() for _ in range(300)] + [free_port(socket.SOCK_DGRAM) for _ in range(100)]
    ports += [free_sip_port() for _ in range(50)]
    assert len(ports) == len(set(ports))
