from salt.models.saltnet import SaltNet
from salt.models.seed import SeedUNet
from salt.models.smpnet import SmpNet

__all__ = ["SaltNet", "SeedUNet", "SmpNet"]
