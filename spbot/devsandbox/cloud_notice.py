"""Plugin of `spbot dev up --simulate-cloud`: replies of the cloud and DNS commands say they came from
the local fakes, and so does the report of a server reboot that restarted the bot."""
from spbot.features.server import reboot

from .notice import CLOUD_GROUPS, add_report_note, install

install(CLOUD_GROUPS)
add_report_note(reboot.REPORT_NOTES)
