"""The reactions that count as a vote on an approval request (or as taking an alert's offer)."""
APPROVE_KEYS = frozenset({"✅", "✔️", "👍"})
DENY_KEYS = frozenset({"❌", "✖️", "👎"})
