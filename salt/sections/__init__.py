"""Whole seismic sections: reading them, cutting tiles and stitching predictions back."""
