"""System upgrades as a feature: apt on Debian and Ubuntu, nixos-rebuild on NixOS, and the reboot.

    feature.py      UpgradeFeature: its parts, start (the "back after reboot" report), the schedule
    settings.py     the [upgrade] section
    flows.py        check, upgrade, rollback, generations (shared by the chat commands and the schedule)
    live_log.py     the tool's log as the job's progress; !cancel only before the system is changed
    backup_first.py the backup of every service before an upgrade (the one link to backups)
    schedule.py     the daily check and the automatic upgrade window
    reboot.py       the reboot, the report after it, the "reboot needed" reminder
    render.py       the replies
    machine.py      which system this is, its configured driver, boot id and uptime
    drivers/        what talks to apt-get, nixos-rebuild, nix-env, nix and systemctl

The chat surface is spbot/commands/upgrade.py (!upgrade, !rollback, !generations, !reboot).

Deployment notes, the why behind a few choices here:
- The package manager runs as a child of the bot, inside the bot's service. If that service is
  restarted halfway through (needrestart on Debian/Ubuntu, or a changed unit during `nixos-rebuild
  switch`), systemd kills the tool with it. So apt runs with NEEDRESTART_MODE=l (list, never
  restart), and on NixOS the bot's unit should set `restartIfChanged = false`.
- `!cancel` is deferred once dpkg or the NixOS activation has started: killing either halfway
  leaves a half-upgraded system. Before that point (downloads, builds) cancelling is safe.
- The tools need root: run the bot as root (as SelfPrivacy's own API does) or point the tool paths
  at wrappers that are allowed to run them.
"""
