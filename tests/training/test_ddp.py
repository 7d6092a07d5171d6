import pytorch_lightning as pl
from hydra.utils import instantiate

from salt.train import train


def validate(module, datamodule, devices: int) -> float:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    return trainer.validate(module, datamodule=datamodule, verbose=False)[0]


def test_ddp_validation_scores_every_image_exactly_once(train_config):
    # 7 folds of 60 tiles: fold 0 holds 9, an odd count that a repeating sampler would pad to 10
    cfg = train_config("data.n_folds=7", "data.val_batch_size=2")
    _, trained = train(cfg)  # a trained net, so that images score differently
    module, datamodule = trained["module"], instantiate(cfg.data)
    datamodule.setup("validate")
    assert len(datamodule.val_set) % 2 == 1
    single = validate(module, datamodule, devices=1)
    double = validate(module, datamodule, devices=2)
    assert double["val/score"] == single["val/score"]
    assert double["val/best_score"] == single["val/best_score"]
    assert double["val/best_threshold"] == single["val/best_threshold"]
