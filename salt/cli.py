"""Console scripts of the Hydra commands (`salt-train`, `salt-predict`, `salt-tune`,
`salt-pseudo`): the same entry points as `python -m salt.train` etc., with one-line errors for
bad overrides. Hydra's shell completion works with them:
`eval "$(salt-train -sc install=bash)"`.

The argparse commands (`salt-export`, `salt-evaluate`, ...) point at their modules' `main`.
`salt.core.config.HYDRA_COMMANDS` maps these scripts to their modules.
"""

from __future__ import annotations

from salt.core.errors import run_hydra_main


def train() -> None:
    from salt.train import main

    run_hydra_main(main)


def predict() -> None:
    from salt.predict import main

    run_hydra_main(main)


def tune() -> None:
    from salt.tune import main

    run_hydra_main(main)


def pseudo() -> None:
    from salt.pseudo import main

    run_hydra_main(main)
