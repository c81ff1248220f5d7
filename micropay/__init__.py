"""micropay: pay a freelancer per task with off-chain vouchers, settle on-chain once."""

from micropay.errors import MicropayError, MicropayValueError
from micropay.escrow import load_artifact

__all__ = ["MicropayError", "MicropayValueError", "load_artifact"]
__version__ = "0.1.0"
