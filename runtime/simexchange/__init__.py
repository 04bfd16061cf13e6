"""Simulated Binance USD-M futures exchange on localhost (real HTTP, real WebSocket), with fault controls.

    with SimExchange(symbols=["BTCUSDT"], start_prices={"BTCUSDT": 100_000}, seed=1) as ex:
        ex.rest_url, ex.ws_url, ex.admin_url
        ex.set_fault("hold_reply", count=1, hold_s=1.0)   # the next order's reply arrives too late
        ex.ledger()                                        # every order request it received

``python -m runtime.simexchange --help`` documents every fault and admin route.
"""

from runtime.simexchange.exchange import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimExchange
from runtime.simexchange.faults import FAULTS, FaultBoard, FaultError
from runtime.simexchange.market import SymbolSpec

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "FAULTS", "FaultBoard", "FaultError", "SimExchange",
           "SymbolSpec"]
