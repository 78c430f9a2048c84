"""Thin Typer commands: parse, call one engine service, render its result. Nothing else."""
