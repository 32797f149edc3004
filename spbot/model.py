"""The base of spbot's pydantic models: a model's validator is built when it is first used, not when its
module is imported. Most models (restic's answers, disk usage, cloud shapes) are not used at all in an
idle bot; building them all at start cost ~30 ms and 1.5 MiB."""
from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    model_config = ConfigDict(defer_build=True)
