"""Plugin of `spbot dev up --simulate-cloud`: replies of the cloud and DNS commands say they came from
the local fakes."""
from .notice import CLOUD_GROUPS, install

install(CLOUD_GROUPS)
