"""Pay per call: micropay channels as an x402 scheme (``micropay-channel``), the ``x402`` extra.

- :class:`~micropay.x402.paywall.Paywall`: put an ASGI app's routes behind a price, paid to a
  :class:`~micropay.Payee` (its server scheme, a local facilitator, the paying middleware).
- :func:`~micropay.x402.transport.paying_client`: an ``httpx.AsyncClient`` that pays them from a
  :class:`~micropay.Payer`'s channels within :class:`~micropay.x402.client.SpendingCaps`.
- :class:`~micropay.x402.client.MicropayChannelScheme`,
  :class:`~micropay.x402.server.MicropayChannelServer`,
  :class:`~micropay.x402.facilitator.MicropayChannelFacilitator`: the scheme's three parts, to
  register on x402's own client, resource server and facilitator.
"""

from micropay.x402.client import MicropayChannelScheme, SpendingCapReached, SpendingCaps
from micropay.x402.facilitator import MicropayChannelFacilitator, local_facilitator
from micropay.x402.paywall import Paywall, PaywallMiddleware
from micropay.x402.scheme import SCHEME, ChannelTerms, ChargeState
from micropay.x402.server import MicropayChannelServer
from micropay.x402.transport import PayingTransport, paying_client

__all__ = [
    "SCHEME", "ChannelTerms", "ChargeState", "MicropayChannelFacilitator", "MicropayChannelScheme",
    "MicropayChannelServer", "PayingTransport", "Paywall", "PaywallMiddleware", "SpendingCapReached", "SpendingCaps",
    "local_facilitator", "paying_client",
]
