from salt.models.saltnet import SaltNet
from salt.models.seed import SeedUNet

__all__ = ["SaltNet", "SeedUNet"]
