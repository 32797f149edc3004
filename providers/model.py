"""The base of the providers' pydantic models (the API shapes): validators are built on first use, not
at import, like spbot's own (spbot/model.py; providers import nothing of spbot)."""
from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
