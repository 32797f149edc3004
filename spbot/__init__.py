"""spbot: run a family's self-hosted server from an end-to-end encrypted Matrix room."""
__version__ = "0.1.0"
