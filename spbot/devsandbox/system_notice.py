"""Plugin of the dev stack's sandbox: replies of commands answered by the system stand-ins say so."""
from .notice import SYSTEM_GROUPS, install

install(SYSTEM_GROUPS)
