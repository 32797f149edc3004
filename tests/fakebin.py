"""Recording executables for tests: the same code the dev stack's sandbox ships
(spbot/devsandbox/fakebin.py), imported here so tests keep `from tests.fakebin import FakeBin, Rule`."""
from spbot.devsandbox.fakebin import Call, FakeBin, Rule

__all__ = ["Call", "FakeBin", "Rule"]
