"""The Optuna sweep config (conf/hparams_search/optuna.yaml)."""

import json

import pytest
import yaml
from hydra.utils import instantiate
from omegaconf import OmegaConf

from tests.helpers.runs import compose_config, run_module

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")


@pytest.mark.parametrize(
    "overrides",
    [["experiment=smoke"], ["experiment=resnet34"], ["experiment=resnet34", "model=smp"]],
)
def test_optuna_search_composes_and_every_searched_key_exists(overrides):
    """On SaltNet and on any smp architecture: the search sweeps no key of one net only."""
    cfg = compose_config("train", [*overrides, "hparams_search=optuna"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    assert cfg.optimized_metric == "best_val_score"
    params = dict(sweeper.params)
    assert set(params) == {
        "optim.lr",
        "loss.stage_weight",
        "loss.classifier_weight",
        "model.dropout",
    }
    for key in params:  # an override of a missing key would fail every trial
        assert OmegaConf.select(cfg, key) is not None, key
    # the searched loss weights reach the loss object
    cfg.loss.stage_weight, cfg.loss.classifier_weight = 0.3, 0.2
    loss = instantiate(cfg.loss)
    assert (loss.stage_weight, loss.classifier_weight) == (0.3, 0.2)


@pytest.mark.slow
def test_two_trial_sweep_returns_the_best_validation_score(synthetic_root, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_module(
        "salt.train",
        "-m",
        "hparams_search=optuna",
        "experiment=smoke",
        f"data.root={synthetic_root}",
        "data.synthetic=null",
        "trainer.max_epochs=1",
        "logger.tensorboard=null",
        "plots=false",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra.sweep.dir={sweep}",
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    trials = sorted(sweep.glob("*_fold0/metrics.json"))
    assert len(trials) == 2
    scores = [json.loads(path.read_text())["best_val_score"] for path in trials]
    results = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(max(scores))
    configs = [yaml.safe_load((p.parent / "config.yaml").read_text()) for p in trials]
    assert configs[0]["optim"]["lr"] != configs[1]["optim"]["lr"]  # the sampler varied it
