"""Translation of redis-py errors into store errors."""

import pytest
import redis.exceptions as rex

from runtime.store import CorruptState, StoreUnavailable
from runtime.store.errors import translated


@pytest.mark.parametrize("raised", [
    rex.ConnectionError("Connection refused"),
    rex.TimeoutError("Timeout reading from socket"),
    rex.BusyLoadingError("Redis is loading the dataset in memory"),
    rex.ResponseError("MISCONF Errors writing to the AOF file: No space left on device"),
    rex.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'."),
    rex.ReadOnlyError("You can't write against a read only replica."),
])
def test_a_server_that_cannot_serve_is_unavailable(raised):
    with pytest.raises(StoreUnavailable) as caught:
        with translated("write_runtime", "k"):
            raise raised
    assert caught.value.operation == "write_runtime" and caught.value.cause is raised


def test_wrongtype_is_corrupt_state_naming_the_key():
    with pytest.raises(CorruptState) as caught:
        with translated("load_runtime", "test:runtime:{s1}"):
            raise rex.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert (caught.value.key, caught.value.field) == ("test:runtime:{s1}", "type")


def test_other_errors_are_left_alone():
    with pytest.raises(rex.ResponseError, match="ERR syntax"):
        with translated("x", "k"):
            raise rex.ResponseError("ERR syntax error")
