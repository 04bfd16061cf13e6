"""Issue 10 (bench): the order path's one round trip carries about 80 arguments; the store's
clients pack them and parse the replies in C (hiredis), not in redis-py's Python packer."""
from __future__ import annotations

from redis.connection import HiredisRespSerializer
from redis._parsers import _HiredisParser

from runtime.store.connection import connect


def test_issue10_store_connections_pack_and_parse_with_hiredis(redis_url):
    client = connect(redis_url)
    try:
        connection = client.connection_pool.get_connection()
        try:
            assert isinstance(connection._command_packer, HiredisRespSerializer), \
                "the order path's arguments are packed in C (hiredis installed, redis-py uses it)"
            assert isinstance(connection._parser, _HiredisParser)
        finally:
            client.connection_pool.release(connection)
        # What the store writes is what Python's repr says, as with redis-py's own encoder.
        client.hset("issue10:pack", mapping={"f": 0.1 + 0.2, "i": 10, "s": "x"})
        assert client.hgetall("issue10:pack") == {b"f": b"0.30000000000000004", b"i": b"10", b"s": b"x"}
    finally:
        client.close()
