"""User-data stream events of the simulated venue, with Binance USD-M's field names.

Pure builders (no lock, no I/O): ``ORDER_TRADE_UPDATE`` for every order change
(NEW, TRADE, CANCELED, EXPIRED), ``ACCOUNT_UPDATE`` after every fill,
``ALGO_UPDATE`` for every algo (conditional) order change, and
``listenKeyExpired``. The matching engine calls them under its lock and hands
the events to the /private sockets.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def order_trade_update(order: dict[str, Any], execution: str, last_qty: Decimal, last_price: Decimal,
                       realized: Decimal, now_ms: int, trade_id: int) -> dict[str, Any]:
    """``ORDER_TRADE_UPDATE`` for ``order`` after ``execution`` (NEW/TRADE/CANCELED/EXPIRED)."""
    return {"e": "ORDER_TRADE_UPDATE", "E": now_ms, "T": now_ms, "o": {
        "s": order["symbol"], "c": order["clientOrderId"], "S": order["side"], "o": order["type"],
        "f": order["timeInForce"], "q": order["origQty"], "p": order["price"], "ap": order["avgPrice"],
        "sp": order["stopPrice"], "x": execution, "X": order["status"], "i": order["orderId"],
        "l": str(last_qty), "z": order["executedQty"], "L": str(last_price), "T": now_ms,
        "t": trade_id if execution == "TRADE" else 0, "b": "0", "a": "0", "m": False,
        "R": order["reduceOnly"], "wt": order["workingType"], "ot": order["origType"], "ps": "BOTH",
        "cp": order["closePosition"], "rp": str(realized), "pP": False, "si": 0, "ss": 0,
        "V": order["selfTradePreventionMode"], "pm": order["priceMatch"], "gtd": order["goodTillDate"],
        "er": "9" if execution == "EXPIRED" and order["type"] == "MARKET" else "0"}}


def account_update(reason: str, balance: Decimal, change: Decimal, positions: list[dict[str, Any]],
                   now_ms: int) -> dict[str, Any]:
    """``ACCOUNT_UPDATE``: the USDT wallet and the positions that changed (``positions``: positionRisk items)."""
    return {"e": "ACCOUNT_UPDATE", "E": now_ms, "T": now_ms, "a": {
        "m": reason,
        "B": [{"a": "USDT", "wb": str(balance), "cw": str(balance), "bc": str(change)}],
        "P": [{"s": p["symbol"], "pa": p["positionAmt"], "ep": p["entryPrice"], "bep": p["breakEvenPrice"],
               "cr": "0", "up": p["unRealizedProfit"], "mt": p["marginType"], "iw": p["isolatedWallet"],
               "ps": "BOTH"} for p in positions]}}


def algo_update(algo: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """``ALGO_UPDATE`` for an algo (conditional) order."""
    return {"e": "ALGO_UPDATE", "T": now_ms, "E": now_ms, "o": {
        "caid": algo["clientAlgoId"], "aid": algo["algoId"], "at": algo["algoType"], "o": algo["orderType"],
        "s": algo["symbol"], "S": algo["side"], "ps": "BOTH", "f": algo["timeInForce"], "q": algo["quantity"],
        "X": algo["algoStatus"], "ai": algo["actualOrderId"], "ap": algo["actualPrice"] or "0",
        "aq": algo["executedQty"], "act": "MARKET" if algo["actualOrderId"] else "0", "tp": algo["triggerPrice"],
        "p": algo["price"], "V": algo["selfTradePreventionMode"], "wt": algo["workingType"],
        "pm": algo["priceMatch"], "cp": algo["closePosition"], "pP": algo["priceProtect"],
        "R": algo["reduceOnly"], "tt": algo["triggerTime"], "gtd": algo["goodTillDate"], "rm": ""}}


def listen_key_expired(listen_key: str, now_ms: int) -> dict[str, Any]:
    """``listenKeyExpired``: the stream of ``listen_key`` ends."""
    return {"e": "listenKeyExpired", "E": now_ms, "listenKey": listen_key}
