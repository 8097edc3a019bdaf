"""The web server's listening socket."""
import socket

from app.ops.serving import listening_socket


def test_accepted_sockets_send_small_frames_at_once():
    """TCP_NODELAY reaches the sockets the listener accepts (no ~40 ms Nagle delay on acks)."""
    listener = listening_socket("127.0.0.1", 0)
    try:
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        listener.close()


def test_a_busy_port_is_an_error_not_a_second_server():
    first = listening_socket("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        try:
            second = listening_socket("127.0.0.1", port)
        except OSError:
            return
        second.close()
        raise AssertionError("bound a port that was already listening")
    finally:
        first.close()
