"""Analysis of a run: out-of-fold scores and the plots and report built from them."""
