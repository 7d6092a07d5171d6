"""Where salt's Hydra configs are, for every entry point (train, predict, tune, bench, tests),
and which commands are Hydra's.

The configs live in `conf/` at the top of the repository; a wheel carries them inside the
package as `salt/conf/` (pyproject maps the `salt.conf` package onto `conf/`). So an installed
salt finds them beside its own files, and a source checkout (an editable install, or
`python -m salt.train` from the repository root) finds them in `conf/`.

Your own config folder goes on Hydra's search path, in front of salt's, without copying ours:
`salt-train hydra.searchpath=[file:///path/to/my_conf] experiment=mine`.

Importing this module also registers the resolvers the configs use: `salt.or` here, and
salt.core.launch's (`salt.launch_time`, `salt.on_rank_zero`, `salt.rank_suffix`).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

import salt.core.launch  # noqa: F401  (registers the launch resolvers)

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # salt/


def config_dir() -> Path:
    """salt's config folder: `salt/conf` in an installed wheel, else the checkout's `conf/`."""
    for candidate in (PACKAGE_DIR / "conf", PACKAGE_DIR.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"salt's configs are neither in {PACKAGE_DIR / 'conf'} (an installed wheel) nor in "
        f"{PACKAGE_DIR.parent / 'conf'} (a source checkout): reinstall salt"
    )


CONFIG_DIR = str(config_dir())

# console script -> the module `python -m` runs, of the commands configured here (salt.cli makes
# the scripts; the parallel launcher starts each job with `python -m MODULE`)
HYDRA_COMMANDS = {
    "salt-train": "salt.train",
    "salt-predict": "salt.predict",
    "salt-tune": "salt.tune",
    "salt-pseudo": "salt.pseudo",
}


def _first_set(value, default):
    return value or default


# `${salt.or:a,b}`: a unless it is null or empty, else b (hydra.run.dir is RUN_DIR on resume)
if not OmegaConf.has_resolver("salt.or"):
    OmegaConf.register_new_resolver("salt.or", _first_set)
