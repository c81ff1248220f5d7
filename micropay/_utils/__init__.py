"""Private helpers; nothing here is part of the public API."""
