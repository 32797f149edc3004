"""Adapters to the machine the bot runs on: subprocesses, disks, restic, packages."""
