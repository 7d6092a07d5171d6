"""The warning when data are unlike the tiles the nets learnt from (salt.sections.domain)."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from salt import section as section_cli
from salt.core.rundir import RunDir
from salt.data.earth_model import Style
from salt.data.synthetic import make_section
from salt.data.synthetic_cube import write_cube
from salt.data.tile_statistics import TGS_TRAINING_TILES, summarise
from salt.sections.cube import Survey
from salt.sections.domain import domain_warning, survey_sections
from tests.helpers.tiny_net import write_checkpoint


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run whose checkpoint predates `training_tiles`."""
    run = tmp_path_factory.mktemp("tiny") / "run"
    write_checkpoint(run / "checkpoints" / "best.ckpt")
    return run


def sections(tmp_path):
    """A generated section as amplitudes, and a copy with far finer layering and more noise."""
    plain, _ = make_section(303, 505, seed=3, style="seismic", amplitudes=True)
    fine, _ = make_section(
        303, 505, seed=3, style="seismic", look=Style(frequency=0.3, noise=0.25), amplitudes=True
    )
    np.save(tmp_path / "plain.npy", plain)
    np.save(tmp_path / "fine.npy", fine)
    return tmp_path / "plain.npy", tmp_path / "fine.npy"


def test_a_run_keeps_the_summary_of_its_training_tiles_in_its_checkpoints(smoke_run):
    run = RunDir(smoke_run)
    checkpoint = torch.load(run.last_checkpoint, weights_only=True, map_location="cpu")
    kept = checkpoint["hyper_parameters"]["training_tiles"]
    cfg = OmegaConf.load(smoke_run / "config.yaml")
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    assert kept == summarise(datamodule.train_set.images)
    assert kept != TGS_TRAINING_TILES


def test_the_section_command_warns_in_one_line_when_the_data_are_unlike_the_tiles(
    smoke_run, tiny_run, tmp_path, capsys
):
    plain, fine = sections(tmp_path)
    # tiny_run's checkpoint predates the summary: the competition's tiles are the reference
    section_cli.main([str(plain), "--runs", str(tiny_run), "--out", str(tmp_path / "a")])
    assert "warning" not in capsys.readouterr().err
    section_cli.main([str(fine), "--runs", str(tiny_run), "--out", str(tmp_path / "b")])
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(
        f"warning: {fine}: its scaled amplitudes are unlike the competition's training tiles: "
    )
    assert "vertical_frequency" in warnings[0] and "seismic.md#when-not-to-trust" in warnings[0]
    assert (tmp_path / "b" / "probability.npy").is_file()  # a warning, not an error
    # a trained run: its own training tiles are the reference
    section_cli.main([str(fine), "--runs", str(smoke_run), "--out", str(tmp_path / "c")])
    assert "unlike the nets' training tiles: vertical_frequency" in capsys.readouterr().err


def test_a_survey_is_compared_on_lines_of_both_axes(tmp_path, tiny_run):
    pytest.importorskip("segyio")
    checkpoints = [tiny_run / "checkpoints" / "best.ckpt"]
    found = {}
    for name, look in (("plain", Style()), ("fine", Style(frequency=0.3, noise=0.25))):
        cube, _ = write_cube(tmp_path / name, (102, 105, 110), seed=1, style="seismic", look=look)
        survey = Survey(cube)
        try:
            lines = list(survey_sections(survey, count=3))
            scaling = survey.scaling()
            found[name] = domain_warning(cube, survey_sections(survey), scaling, checkpoints)
        finally:
            survey.close()
        assert [line.shape for line in lines] == [(110, 105)] * 3 + [(110, 102)] * 3
    assert found["plain"] is None
    assert "vertical_frequency" in found["fine"]
