"""Foundations every part may import: errors, config lookup, files, the run directory, the metric."""
