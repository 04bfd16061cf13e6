"""Signing (DESIGN §4 test vector) and client order id validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from runtime.venue.ids import validate_client_order_id
from runtime.venue.signing import encode_params, format_value, sign, signed_query, verify

SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
PAYLOAD = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
           "&recvWindow=5000&timestamp=1591702613943")
EXPECTED = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"


def test_design_test_vector_reproduced_exactly() -> None:
    assert sign(SECRET, PAYLOAD) == EXPECTED


def test_encoding_preserves_order_so_the_vector_holds_from_params() -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": 1, "price": Decimal("9000"),
              "timeInForce": "GTC", "recvWindow": 5000, "timestamp": 1591702613943}
    assert encode_params(params) == PAYLOAD
    assert signed_query(SECRET, params) == f"{PAYLOAD}&signature={EXPECTED}"


def test_verify_rejects_a_tampered_payload() -> None:
    assert verify(SECRET, PAYLOAD, EXPECTED)
    assert not verify(SECRET, PAYLOAD.replace("quantity=1", "quantity=2"), EXPECTED)
    assert not verify("wrong-secret", PAYLOAD, EXPECTED)


@pytest.mark.parametrize("value,expected", [
    (True, "true"), (False, "false"), (0.00001, "0.00001"), (Decimal("1E+2"), "100"),
    (Decimal("0.0100"), "0.01"), (1.5, "1.5"), (100000.0, "100000"), (7, "7"),
])
def test_values_never_use_exponents_or_python_booleans(value: object, expected: str) -> None:
    assert format_value(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "x" * 37, "has space", "semi;colon", "emoji-\u2603", None, 12])
def test_invalid_client_order_id_raises_naming_it(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid client order id") as info:
        validate_client_order_id(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("good", ["a", "s1:buy:1", "x" * 36, "A.b/c_d-e:F"])
def test_valid_client_order_ids_pass_unchanged(good: str) -> None:
    assert validate_client_order_id(good) == good
