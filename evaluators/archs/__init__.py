"""Network architectures that neither torchvision nor timm provide."""
from evaluators.archs.efficientnet_lite import LITE_PARAMS, EfficientNetLite, efficientnet_lite0_arch, efficientnet_lite_arch

__all__ = ["LITE_PARAMS", "EfficientNetLite", "efficientnet_lite0_arch", "efficientnet_lite_arch"]
