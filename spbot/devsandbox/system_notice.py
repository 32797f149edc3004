"""Plugin of the dev stack's sandbox: replies of commands answered by the system stand-ins say so, and so
does the report after a (sandboxed) reboot."""
from spbot.features.upgrade import reboot

from .notice import SYSTEM_GROUPS, add_report_note, install

install(SYSTEM_GROUPS)
add_report_note(reboot.REPORT_NOTES)
