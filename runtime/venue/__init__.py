"""Venue edge: the Binance USD-M futures protocol, spoken by one connector.

Everything that knows HTTP codes, error codes, signing, weights and server time
lives here; everything above sees ``VenueOutcome`` and typed data only.
"""

from runtime.venue.budget import BudgetDecision, Priority, RequestBudget, WeightBudget, request_weight
from runtime.venue.clock import ClockSample, ServerClock
from runtime.venue.connector import BinanceFuturesConnector
from runtime.venue.ids import CLIENT_ORDER_ID_PATTERN, is_valid_client_order_id, validate_client_order_id
from runtime.venue.models import DepthSnapshot, Position
from runtime.venue.outcomes import Expect, MalformedReply, OutcomeKind, VenueOutcome, classify, classify_exception
from runtime.venue.signing import sign, signed_query
from runtime.venue.user_events import AccountUpdate, AlgoUpdate, OrderUpdate
from runtime.venue.user_stream import UserDataStream

__all__ = [
    "AccountUpdate",
    "AlgoUpdate",
    "BinanceFuturesConnector",
    "BudgetDecision",
    "CLIENT_ORDER_ID_PATTERN",
    "ClockSample",
    "DepthSnapshot",
    "Expect",
    "MalformedReply",
    "OrderUpdate",
    "OutcomeKind",
    "Position",
    "Priority",
    "RequestBudget",
    "ServerClock",
    "UserDataStream",
    "VenueOutcome",
    "WeightBudget",
    "classify",
    "classify_exception",
    "is_valid_client_order_id",
    "request_weight",
    "sign",
    "signed_query",
    "validate_client_order_id",
]
