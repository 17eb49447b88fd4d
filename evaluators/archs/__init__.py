"""Network architectures that neither torchvision nor timm provide."""
from evaluators.archs.efficientnet_lite import EfficientNetLite, efficientnet_lite0_arch

__all__ = ["EfficientNetLite", "efficientnet_lite0_arch"]
