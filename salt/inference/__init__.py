"""Inference without Lightning: tiles in and probabilities out (TTA, ensembles), post-processing, submissions."""
