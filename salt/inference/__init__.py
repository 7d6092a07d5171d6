"""Inference: checkpoints by kind, tiles in and probabilities out (TTA, ensembles), post-processing, submissions."""
