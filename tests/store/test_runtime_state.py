"""The Runtime schema check (F14), as properties: valid records round-trip,
garbage never passes silently, and every rejection names its field."""

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.store.errors import CorruptState
from runtime.store.runtime_state import (
    FIELDS,
    FLOAT_FIELDS,
    MAX_LAST_ORDERS,
    OPTIONAL_FIELDS,
    PURPOSES,
    Position,
    Runtime,
    Status,
    parse_runtime,
)

KEY = "test:runtime:{s1}"
order_ids = st.from_regex(r"[.A-Za-z0-9:/_-]{1,36}", fullmatch=True)
amounts = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
pending = st.one_of(st.just(("", "")), st.tuples(order_ids, st.sampled_from(PURPOSES)))
runtimes = st.builds(
    lambda pair, **kw: Runtime(pending_order=pair[0], pending_purpose=pair[1], **kw),
    pending,
    position=st.sampled_from(list(Position)),
    status=st.sampled_from(list(Status)),
    last_orders=st.lists(order_ids, max_size=MAX_LAST_ORDERS).map(tuple),
    generation=st.integers(0, 2**63 - 1),
    updated_at=st.floats(min_value=0, max_value=4e9, allow_nan=False, allow_infinity=False),
    reason=st.text(max_size=200),
    quantity=amounts,
    entry_price=amounts,
    stop_loss=st.none() | amounts.filter(lambda v: v > 0),
    entry_seq=st.integers(0, 2**63 - 1),
    pending_since=amounts,
    pending_sends=st.integers(0, 2**63 - 1),
)
not_a_decimal = st.text().filter(lambda v: not v.replace(".", "", 1).isdigit())
bad_amounts = st.one_of(st.sampled_from(["nan", "inf", "-1.0", "", "1,5", " 1.0", "1e400", "0x10"]), not_a_decimal)
bad_integers = st.one_of(
    st.text().filter(lambda v: not (v.isascii() and v.isdigit())),
    st.integers(1, 10**6).map(lambda n: "0" + str(n)),  # leading zero: not canonical
    st.integers(-(10**6), -1).map(str),
    st.just(str(2**63)),
)
bad_order_ids = st.one_of(
    st.text(min_size=37, max_size=60, alphabet="abc"),
    st.text(min_size=1).filter(lambda v: any(c not in ".:/_-" and not (c.isascii() and c.isalnum()) for c in v)),
)
# Values no field accepts (a Runtime never serialises to any of them).
garbage = {
    "position": st.text().filter(lambda v: v not in {p.value for p in Position}),
    "status": st.text().filter(lambda v: v not in {s.value for s in Status}),
    "last_orders": st.one_of(
        st.just(","), st.just("a,,b"), bad_order_ids.filter(lambda v: "," not in v or v.strip(",") != v),
        st.just(",".join(["o"] * (MAX_LAST_ORDERS + 1))),
    ),
    "generation": bad_integers,
    "updated_at": bad_amounts,
    "reason": st.text(min_size=1001, max_size=1100),
    "quantity": bad_amounts,
    "entry_price": bad_amounts,
    "stop_loss": st.one_of(st.sampled_from(["0", "0.0", "nan", "-5", " "]), not_a_decimal.filter(bool)),
    "entry_seq": bad_integers,
    "pending_order": bad_order_ids,
    "pending_purpose": st.text(min_size=1).filter(lambda v: v not in PURPOSES),
    "pending_since": bad_amounts,
    "pending_sends": bad_integers,
}


def as_redis_reply(fields: dict[str, str]) -> dict[bytes, bytes]:
    return {k.encode(): v.encode() for k, v in fields.items()}


@given(runtimes)
def test_valid_runtime_round_trips_through_the_stored_form(runtime):
    assert parse_runtime(as_redis_reply(runtime.to_redis()), KEY) == runtime
    assert parse_runtime(runtime.to_redis(), KEY) == runtime


@settings(suppress_health_check=[HealthCheck.filter_too_much], max_examples=300)
@given(runtimes, st.data())
def test_f14_garbage_in_any_field_is_named(runtime, data):
    field = data.draw(st.sampled_from(FIELDS))
    bad = data.draw(garbage[field])
    raw = runtime.to_redis() | {field: bad}
    with pytest.raises(CorruptState) as caught:
        parse_runtime(as_redis_reply(raw), KEY)
    assert caught.value.key == KEY
    assert caught.value.field == field, caught.value


@settings(max_examples=400)
@given(
    runtimes,
    st.dictionaries(
        st.one_of(st.sampled_from(FIELDS), st.sampled_from(FIELDS).map(str.encode), st.binary(max_size=12)),
        st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)),
        max_size=8,
    ),
    st.sets(st.sampled_from(FIELDS)),
)
def test_f14_random_hashes_never_pass_silently(runtime, overrides, dropped):
    """Anything parse_runtime accepts is exactly what a Runtime would have stored."""
    raw = {k.encode(): v.encode() for k, v in runtime.to_redis().items() if k not in dropped} | overrides
    try:
        parsed = parse_runtime(raw, KEY)
    except CorruptState as exc:
        assert exc.key == KEY and exc.field and exc.problem
        return
    stored = {(k if isinstance(k, str) else k.decode()): v.decode() for k, v in raw.items()}
    for name, default in OPTIONAL_FIELDS.items():  # older records lack these: read as their default
        stored.setdefault(name, default)
    assert set(stored) == set(FIELDS)
    canonical = parsed.to_redis()
    for name in FIELDS:
        if name in FLOAT_FIELDS and stored[name]:
            assert math.isclose(float(stored[name]), getattr(parsed, name)) and getattr(parsed, name) >= 0
        else:
            assert canonical[name] == stored[name], name


def test_f14_missing_and_unexpected_fields_are_named():
    raw = Runtime().to_redis()
    del raw["status"]
    with pytest.raises(CorruptState, match="'status': missing"):
        parse_runtime(raw, KEY)
    with pytest.raises(CorruptState) as caught:
        parse_runtime(Runtime().to_redis() | {"colour": "blue"}, KEY)
    assert (caught.value.field, caught.value.problem) == ("colour", "unexpected field")


def test_f14_a_pending_order_without_its_purpose_is_named():
    raw = Runtime(pending_order="s1:e1", pending_purpose="entry").to_redis() | {"pending_purpose": ""}
    with pytest.raises(CorruptState, match="must be set together") as caught:
        parse_runtime(raw, KEY)
    assert caught.value.field == "pending_purpose"
    with pytest.raises(ValueError, match="set together"):
        Runtime(pending_purpose="exit")


def test_f14_bytes_that_are_not_utf8_are_named():
    raw = as_redis_reply(Runtime().to_redis()) | {b"reason": b"\xff\xfe"}
    with pytest.raises(CorruptState) as caught:
        parse_runtime(raw, KEY)
    assert caught.value.field == "reason" and "UTF-8" in caught.value.problem


def test_constructing_an_invalid_runtime_is_a_programming_error():
    with pytest.raises(ValueError, match="position"):
        Runtime(position="flying")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="generation"):
        Runtime(generation=-1)
    with pytest.raises(ValueError, match="updated_at"):
        Runtime(updated_at=float("nan"))
    with pytest.raises(ValueError, match="last_orders"):
        Runtime(last_orders=("has space",))


def test_plain_strings_are_accepted_as_enum_values():
    r = Runtime(position="bought", status="paused", last_orders=["a"], updated_at=5, quantity=2,  # type: ignore[arg-type]
                stop_loss=95000)
    assert (r.position, r.status, r.last_orders, r.updated_at) == (Position.BOUGHT, Status.PAUSED, ("a",), 5.0)
    assert (r.quantity, r.stop_loss) == (2.0, 95000.0) and isinstance(r.stop_loss, float)


def test_with_order_keeps_only_the_most_recent_orders():
    r = Runtime()
    for n in range(MAX_LAST_ORDERS + 3):
        r = r.with_order(f"o{n}")
    assert len(r.last_orders) == MAX_LAST_ORDERS
    assert r.last_orders[-1] == f"o{MAX_LAST_ORDERS + 2}" and r.last_orders[0] == "o3"


def test_seed724076_record_written_before_pending_sends_existed_reads_as_may_have_left():
    raw = Runtime(pending_order="s1:x1", pending_purpose="exit", pending_sends=0).to_redis()
    assert raw["pending_sends"] == "0" and parse_runtime(raw, KEY).pending_sends == 0
    del raw["pending_sends"]
    assert parse_runtime(raw, KEY).pending_sends == 1, \
        "an older record never claims that nothing left the process: its order waits the settle window"


def test_record_written_before_pending_since_existed_loads_with_zero():
    raw = Runtime(pending_order="s1:e1", pending_purpose="entry").to_redis()
    del raw["pending_since"]
    assert parse_runtime(raw, KEY).pending_since == 0.0, "older records stay readable; 0 = send time unknown"
