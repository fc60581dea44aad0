"""Every event of Plugpay, one module per bounded context.

Importing this package registers all event types for decoding.
"""

from plugpay_events.contracts.billing import *  # noqa: F403
from plugpay_events.contracts.identity import *  # noqa: F403
from plugpay_events.contracts.pricing import *  # noqa: F403
from plugpay_events.contracts.sessions import *  # noqa: F403
from plugpay_events.contracts.stations import *  # noqa: F403
