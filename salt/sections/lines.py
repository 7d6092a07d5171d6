"""The lines of a survey predicted by Lightning's predict loop, on one process or several.

One item of `LineDataset` is one whole line (an inline or a crossline), read and scaled to 8-bit;
`LinePredictor.predict_step` tiles it, predicts the tiles with the TTA and checkpoint ensemble
of salt.predict, keeping every view (checkpoint x TTA view) apart, and blends each view's tiles
back (salt.sections.stitch): the line's probability is the views' mean, its spread their
standard deviation (salt.sections.uncertainty); `LineWriter` hands each line to
`SurveyWork.write_line` as soon as it is predicted. Under DDP each rank takes its own share of
the lines left (`rank_share`: every world-th, from its rank on) and writes only those: nothing is
gathered. The share is taken here rather than by Lightning's distributed sampler for predicting,
which refuses (an AssertionError) a rank without a line: a resume with fewer lines left than
processes, which here is a rank with nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
from pytorch_lightning.callbacks import BasePredictionWriter, Callback, TQDMProgressBar
from torch import nn
from torch.utils.data import DataLoader, Dataset

from salt.core.errors import SaltError
from salt.inference.tiles import predict_ensemble
from salt.sections.cube import Survey
from salt.sections.paging import trim_heap
from salt.sections.seismic import Scaling
from salt.sections.stitch import stitch
from salt.sections.survey_work import SurveyWork
from salt.sections.uncertainty import view_statistics

Line = tuple[str, int]  # ("inline" or "crossline", index along that axis)


class LineDataset(Dataset):
    """`lines` of `survey` as dicts: axis, index, image ((samples, traces) uint8) and blank
    ((traces,) bool: missing or all-zero traces, which are given no salt)."""

    def __init__(self, survey: Survey, lines: Sequence[Line], scaling: Scaling) -> None:
        self.survey, self.lines, self.scaling = survey, list(lines), scaling

    def __len__(self) -> int:
        return len(self.lines)

    def __getitem__(self, item: int) -> dict[str, Any]:
        axis, index = self.lines[item]
        amplitudes = self.survey.line(axis, index)
        return {
            "axis": axis,
            "index": index,
            "image": self.scaling(amplitudes),
            "blank": ~np.any(amplitudes, axis=0),
        }


def rank_share(lines: Sequence[Line], rank: int, world: int) -> list[Line]:
    """The lines that process `rank` of `world` predicts: every world-th, from the rank-th on
    (none when there are fewer lines than processes)."""
    return list(lines[rank::world])


def one_line(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """The DataLoader's collate_fn: a batch is one line, as it is."""
    (line,) = batch
    return line


class SurveyLines(pl.LightningDataModule):
    """The lines of `axes` not yet done in `work`, decided once all ranks have started.

    In `setup`, rank 0 starts the work folder (`SurveyWork.start`); then every rank lists the
    lines already done, and no rank goes on before all have listed them, so all agree on the
    lines left (nothing is written in between) and each takes its share of the same list. A rank
    whose share is empty runs no step (its loader is allowed to be empty).
    """

    def __init__(
        self,
        survey: Survey,
        work: SurveyWork,
        settings: dict[str, Any],
        overwrite: bool,
        axes: Sequence[str],
        scaling: Scaling,
        workers: int = 0,
    ) -> None:
        super().__init__()
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.survey, self.work, self.settings, self.overwrite = survey, work, settings, overwrite
        self.axes, self.scaling, self.workers = list(axes), scaling, workers
        self.todo: list[Line] = []

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        assert trainer is not None, "setup runs inside Trainer.predict"
        strategy = trainer.strategy
        if trainer.is_global_zero:
            self.work.start(self.settings, self.overwrite)
        strategy.barrier("survey-started")
        self.todo = [
            (axis, index)
            for axis in self.axes
            for index in sorted(set(range(self.survey.line_count(axis))) - self.work.done(axis))
        ]
        strategy.barrier("survey-listed")

    def predict_dataloader(self) -> DataLoader:
        trainer = self.trainer
        assert trainer is not None, "the loader is asked for inside Trainer.predict"
        share = rank_share(self.todo, trainer.global_rank, trainer.world_size)
        return DataLoader(
            LineDataset(self.survey, share, self.scaling),
            batch_size=1,
            collate_fn=one_line,
            num_workers=self.workers,
            persistent_workers=False,
        )


class LinePredictor(pl.LightningModule):
    """Predicts one line per step: a float16 (2, samples, traces) array of the salt probability
    (the mean of the views: every checkpoint's every TTA view, each blended on its own) and the
    views' standard deviation, both 0 on blank traces. `models` are
    `salt.inference.tiles.load_model` results."""

    def __init__(
        self,
        models: Sequence[tuple[nn.Module, dict]],
        tta: Sequence[str],
        stride: int,
        batch_size: int,
        precision: str | None,
    ) -> None:
        super().__init__()
        self.nets = nn.ModuleList([net for net, _ in models])
        self.tile_options = [options for _, options in models]
        self.tta, self.stride = list(tta), stride
        self.batch_size, self.tile_precision = batch_size, precision

    def predict_tiles(self, tiles: np.ndarray) -> np.ndarray:
        """(N, views, 101, 101): every view's probabilities, not averaged."""
        return predict_ensemble(
            list(zip(self.nets, self.tile_options)),
            tiles,
            batch_size=self.batch_size,
            device=self.device,
            tta=self.tta,
            precision=self.tile_precision,
            views=True,
        ).masks

    def predict_step(self, batch: dict[str, Any], batch_idx: int = 0) -> dict[str, Any]:
        image = batch["image"]
        line = np.zeros((2, *image.shape), dtype=np.float16)  # probability, views' deviation
        prediction = {"axis": batch["axis"], "index": batch["index"], "line": line}
        if batch["blank"].all():  # a line without a live trace (a missing line): no salt
            return prediction

        def emit(top: int, _image: np.ndarray, views: np.ndarray) -> None:
            mean, deviation = view_statistics(views)  # views: (views, rows, traces)
            line[0, top : top + mean.shape[0]] = mean
            line[1, top : top + mean.shape[0]] = deviation

        stitch(image, self.predict_tiles, emit, stride=self.stride)
        line[:, :, batch["blank"]] = 0
        return prediction


class LineWriter(BasePredictionWriter):
    """Writes every predicted line through `write(axis, index, line)` at once."""

    def __init__(self, write: Callable[[str, int, np.ndarray], Any]) -> None:
        super().__init__(write_interval="batch")
        self.write = write

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        self.write(prediction["axis"], prediction["index"], prediction["line"])
        trim_heap()  # what the line's tiles and activations used: resident memory stays flat


class StopOnSigterm(Callback):
    """Ends the prediction after the line in progress once the process got a SIGTERM (`kill`, a
    scheduler's time limit): Lightning's signal handler only notes it, and its predict loop,
    unlike its fit loop, would go on to the last line. The lines written are kept; the error
    (exit 1) says that the same command continues from them. Place it after the LineWriter."""

    def on_predict_batch_end(self, trainer, *args, **kwargs) -> None:
        if trainer.received_sigterm:
            raise SaltError(
                "stopped by SIGTERM; the lines predicted so far are kept: "
                "the same command continues from them"
            )


class LineProgressBar(TQDMProgressBar):
    """Lightning's bar, counting lines: lines per second and the time left (rank 0's lines)."""

    def init_predict_tqdm(self):
        bar = super().init_predict_tqdm()
        bar.unit = "line"
        return bar

    def on_predict_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        super().on_predict_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)
        self.predict_progress_bar.set_description(f"{batch['axis']}s", refresh=False)
