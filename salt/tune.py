"""Tune post-processing on out-of-fold probabilities: `python -m salt.tune runs=[RUN_DIR,...]`.

The search itself is salt.inference.tuning's (one setting at a time, each kept only if it raises
the OOF score); this command checks the settings, reads the runs' oof.npz and writes postprocess.json
in each run.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from salt.core.checks import each, non_negative_whole_number, probability
from salt.core.config import CONFIG_DIR
from salt.core.errors import exit_on_salt_error, run_hydra_main
from salt.core.rundir import POSTPROCESS, RunDir, run_entries
from salt.inference.tuning import load_out_of_fold, save_tuned, tune


def check_settings(cfg: DictConfig) -> list[str]:
    """The run entries of `runs=`; the candidate lists refused in one line when a value could
    not be a setting (a size below 0, a threshold outside (0, 1))."""
    runs = run_entries("runs", cfg.runs)
    each("min_sizes", cfg.min_sizes, non_negative_whole_number)
    each("min_areas", cfg.min_areas, non_negative_whole_number)
    each("salt_thresholds", cfg.salt_thresholds, probability)
    return runs


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="tune")
@exit_on_salt_error
def main(cfg: DictConfig) -> None:
    entries = check_settings(cfg)
    runs = [RunDir.of(entry).path for entry in entries]
    oof = load_out_of_fold(runs)
    postprocess, before, after = tune(oof, cfg)
    save_tuned(runs, postprocess, before, after, len(oof["ids"]))
    print(f"{len(oof['ids'])} out-of-fold images from {len(runs)} run(s)")
    print(f"OOF score before: {before:.4f} (threshold 0.5, no post-processing)")
    print(f"OOF score after:  {after:.4f} with {postprocess}")
    print(f"saved {POSTPROCESS} in {', '.join(map(str, runs))}")


if __name__ == "__main__":
    run_hydra_main(main)
