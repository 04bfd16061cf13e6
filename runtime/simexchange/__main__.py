"""``python -m runtime.simexchange``: run the simulated exchange in the foreground.

Prints one JSON line with the URLs once it listens, then serves until SIGINT or
SIGTERM (exit 0). The API secret is never printed: it is the one passed with
--api-secret, or the documented simulator default.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence

from runtime.simexchange.exchange import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimExchange
from runtime.simexchange.faults import help_text

ADMIN_HELP = """admin routes (JSON; never affected by faults):
  GET    /admin/state                 prices, books, positions, order counts, active faults, sockets
  GET    /admin/ledger[?client_order_id=ID]   every order request received, with outcome
  GET    /admin/faults                active faults          GET /admin/help  fault catalog as JSON
  POST   /admin/faults                switch faults (see above)   DELETE /admin/faults  all off
  GET    /admin/book?symbol=S         the exchange's full depth book
  POST   /admin/price                 {"symbol": S, "price": P} | {"symbol": S, "pct": X} |
                                      {"symbol": S, "path": [P1, P2, ...]} (one price per market tick)
  POST   /admin/market                {"paused": bool, "volatility": v, "depth_interval_s": s, "mark_interval_s": s}
  POST   /admin/liquidation           {"symbol": S, "side": "BUY"|"SELL", "quantity": Q, "price": P?}
  POST   /admin/listenKey/expire      expire the active listenKey now (its sockets get listenKeyExpired)
  POST   /admin/reset                 forget orders, positions, ledger, faults; prices back to start
protocol: /fapi/v1/{ping,time,depth,exchangeInfo,order,openOrders,algoOrder,openAlgoOrders,leverageBracket},
          /fapi/v2/positionRisk, /fapi/v3/positionRisk, /fapi/v2|v3/{account,balance}, POST/PUT/DELETE /fapi/v1/listenKey (API key only, one key per account);
          WS routes (Binance's 2026 split), each as /ws/<streams> or /stream?streams=<a>/<b>:
            /public   <sym>@depth@100ms, <sym>@bookTicker
            /market   <sym>@markPrice@1s, <sym>@aggTrade, <sym>@forceOrder, !forceOrder@arr
            /private  /private/ws/<listenKey>: ORDER_TRADE_UPDATE, ACCOUNT_UPDATE, ALGO_UPDATE, listenKeyExpired
          a stream asked for on the wrong route is accepted and silently withheld, as on Binance"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.simexchange",
        description="Simulated Binance USD-M futures exchange on localhost, with fault controls.",
        epilog=f"{help_text()}\n\n{ADMIN_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="REST + admin port (default: a free port)")
    parser.add_argument("--ws-port", type=int, default=0, help="WebSocket port (default: a free port)")
    parser.add_argument("--symbols", nargs="+", default=["BTCUSDT"], metavar="SYMBOL", help="symbols traded")
    parser.add_argument("--price", action="append", default=[], metavar="SYMBOL=PRICE",
                        help="start price of a symbol (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the price walk and books")
    parser.add_argument("--api-key", default=DEFAULT_API_KEY, help="accepted API key (default: the sim key)")
    parser.add_argument("--api-secret", default=DEFAULT_API_SECRET, help="its secret (default: the sim secret)")
    parser.add_argument("--depth-interval-ms", type=int, default=100, help="market tick / depth stream period")
    parser.add_argument("--mark-interval-ms", type=int, default=1000, help="markPrice stream period")
    parser.add_argument("--volatility", type=float, default=0.0005, help="random-walk sigma per tick (0: flat)")
    parser.add_argument("--weight-limit", type=int, default=2400, help="request weight per minute before 429")
    return parser


def parse_prices(items: Sequence[str]) -> dict[str, float]:
    prices = {}
    for item in items:
        symbol, sep, value = item.partition("=")
        try:
            prices[symbol.upper()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not symbol:
            raise SystemExit(f"--price expects SYMBOL=PRICE, got {item!r}")
    return prices


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    exchange = SimExchange(
        args.symbols, parse_prices(args.price), args.seed, host=args.host, port=args.port, ws_port=args.ws_port,
        api_key=args.api_key, api_secret=args.api_secret, depth_interval_s=args.depth_interval_ms / 1000,
        mark_interval_s=args.mark_interval_ms / 1000, volatility=args.volatility, weight_limit=args.weight_limit,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with exchange:
        print(json.dumps({"rest_url": exchange.rest_url, "ws_url": exchange.ws_url, "admin_url": exchange.admin_url,
                          "api_key": exchange.api_key, "symbols": exchange.symbols}), flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
