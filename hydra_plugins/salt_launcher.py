"""Hydra instantiates launchers only from the `hydra_plugins` namespace (a portion of it here,
installed with salt's wheel, or found in a checkout when the repository root is on sys.path).

There is deliberately no hydra_plugins/__init__.py: it would hide the installed plugins
(hydra-optuna-sweeper) behind this folder.
"""

from salt.training import launcher


class ParallelLauncher(launcher.ParallelLauncher):
    """salt.training.launcher.ParallelLauncher, under the name Hydra accepts for a plugin."""
