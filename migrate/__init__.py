"""migrate: take a live game backend from one AWS region to three-region active-active."""

__version__ = "0.1.0"
