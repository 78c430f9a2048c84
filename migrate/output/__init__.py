"""The one output path: diagnostics to stderr through one rich console, data to stdout (rendered
text or the versioned JSON envelope)."""
