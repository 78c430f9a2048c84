"""Benchmarks: numbers come from here, with the command that produced them and the machine noted."""
