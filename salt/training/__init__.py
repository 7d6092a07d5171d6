"""Training: the LightningModule, losses, schedules, callbacks, resume, loggers, the launcher."""
