"""The Store facade: how it is built, namespaces, and what it refuses."""

import pytest
import redis

from runtime.store import Runtime, Store
from runtime.store.connection import connect
from runtime.store.embedded import Endpoint


def test_namespaces_do_not_see_each_other(make_store):
    a, b = make_store("alpha"), make_store("beta")
    a.write_runtime("s1", Runtime(generation=1))
    a.enqueue({"strategy": "s1"})
    assert b.load_runtime("s1") is None
    assert b.read("engine-1") == []
    assert a.keys.runtime("s1") == "alpha:runtime:{s1}"


def test_store_accepts_an_endpoint_or_a_ready_client(redis_url):
    via_endpoint = Store(Endpoint(redis_url), "test")
    client = connect(redis_url)
    via_client = Store(client, "test")
    try:
        via_endpoint.write_runtime("s1", Runtime(generation=2))
        assert via_client.load_runtime("s1") == Runtime(generation=2)
    finally:
        via_endpoint.close()
        via_client.close()
    assert client.ping() is True, "a client passed in stays open after close()"
    client.close()


def test_store_refuses_a_client_that_decodes_responses(redis_url):
    with pytest.raises(ValueError, match="decode_responses=False"):
        Store(redis.Redis.from_url(redis_url, decode_responses=True), "test")


def test_store_uses_fail_fast_timeouts(store):
    kwargs = store.client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 0.5 and kwargs["socket_connect_timeout"] == 0.5
    assert kwargs["retry"].get_retries() == 0
