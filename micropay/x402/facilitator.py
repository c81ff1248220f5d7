"""The local facilitator entry of the ``micropay-channel`` scheme.

An x402 resource server asks its facilitators which (scheme, network) pairs they support when it
starts. This entry, registered on an in-process ``x402Facilitator``, answers for the scheme, so a
freelancer's server starts with no remote facilitator at all. It never verifies or settles a
payment: the scheme's server hooks do both, against the payee's own store, and the freelancer
settles on chain later (``micropay settle``), one transaction for every channel.
"""

from __future__ import annotations

from typing import Any

from x402 import Network, PaymentPayload, PaymentRequirements, SettleResponse, VerifyResponse, x402Facilitator
from x402.interfaces import FacilitatorContext

from micropay.x402.scheme import SCHEME

_NOT_HERE = "micropay_verified_by_resource_server"


class MicropayChannelFacilitator:
    """The scheme's facilitator entry: it only says the scheme is supported."""

    scheme = SCHEME
    caip_family = "eip155:*"

    def get_extra(self, network: Network) -> dict[str, Any] | None:
        return None

    def get_signers(self, network: Network) -> list[str]:
        return []

    def verify(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> VerifyResponse:
        """Never reached: the resource server's scheme verifies (refused here, with why)."""
        return VerifyResponse(is_valid=False, invalid_reason=_NOT_HERE,
                              invalid_message="micropay-channel payments are checked by the resource server's scheme")

    def settle(self, payload: PaymentPayload, requirements: PaymentRequirements,
               context: FacilitatorContext | None = None) -> SettleResponse:
        """Never reached: the resource server's scheme stores the voucher, the freelancer settles later."""
        return SettleResponse(success=False, error_reason=_NOT_HERE, transaction="", network=requirements.network)


def local_facilitator(network: Network) -> x402Facilitator:
    """An in-process facilitator that supports ``micropay-channel`` on ``network`` (a concrete CAIP-2 id)."""
    facilitator = x402Facilitator()
    facilitator.register([network], MicropayChannelFacilitator())
    return facilitator
