from salt.models.saltnet import SaltNet

__all__ = ["SaltNet"]
