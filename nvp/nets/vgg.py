"""Frozen VGG19 / VGG16 feature extractor for perceptual losses and metrics, without torchvision.

The layer layout is that of torchvision's ``vgg19().features`` (configuration "E": sixteen
3 × 3 convolutions with ReLU, five max-poolings) with the same indices, so the ImageNet weights
torchvision publishes (``vgg19-dcbb9e9d.pth``) load by their keys ``features.N.weight`` /
``features.N.bias``; the ``classifier.*`` keys are ignored. Nothing is ever downloaded: the file
is read from a given path or from the torch hub cache, where torchvision itself would have put
it (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``).

``arch="vgg16"`` gives torchvision's ``vgg16().features`` (configuration "D": thirteen
convolutions; ``vgg16-397923af.pth``), the network LPIPS is defined on.

Inputs are normalised with the ImageNet mean and std inside the module (a VGG loss without it
is a known defect of the authors' release); the input range is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from nvp.errors import InputError, MissingDependencyError
from nvp.io.files import read_state_dict, state_dict_problems, summarize_problems

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "VGG16_FILENAME",
    "VGG16_LAYERS",
    "VGG16_URL",
    "VGG19_FILENAME",
    "VGG19_LAYERS",
    "VGG19_URL",
    "VGGFeatures",
    "default_vgg16_path",
    "default_vgg19_path",
    "vgg16_features",
    "vgg19_features",
]

VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
"""File name of torchvision's ImageNet VGG19 weights."""

VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILENAME}"
"""Where torchvision publishes them (548 MB; only named in error messages)."""

VGG16_FILENAME = "vgg16-397923af.pth"
"""File name of torchvision's ImageNet VGG16 weights."""

VGG16_URL = f"https://download.pytorch.org/models/{VGG16_FILENAME}"
"""Where torchvision publishes them (528 MB; only named in error messages)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CFG_E: list[int | str] = [64, 64, "M", 128, 128, "M"] + [256] * 4 + ["M"]
_CFG_E += [512] * 4 + ["M"] + [512] * 4 + ["M"]
_CFG_D: list[int | str] = [64, 64, "M", 128, 128, "M"] + [256] * 3 + ["M"]
_CFG_D += [512] * 3 + ["M"] + [512] * 3 + ["M"]


def _layer_names(cfg: list[int | str]) -> dict[str, int]:
    """Name -> index in ``features`` (VGG19: ``conv3_4`` -> 16, ``relu3_4`` -> 17, ``pool3`` ->
    18)."""
    names: dict[str, int] = {}
    block, conv, index = 1, 1, 0
    for v in cfg:
        if v == "M":
            names[f"pool{block}"] = index
            index += 1
            block, conv = block + 1, 1
        else:
            names[f"conv{block}_{conv}"] = index
            names[f"relu{block}_{conv}"] = index + 1
            index += 2
            conv += 1
    return names


VGG19_LAYERS: dict[str, int] = _layer_names(_CFG_E)
"""Layer name -> index in torchvision's ``vgg19().features`` (37 modules, 0 … 36)."""

VGG16_LAYERS: dict[str, int] = _layer_names(_CFG_D)
"""Layer name -> index in torchvision's ``vgg16().features`` (31 modules, 0 … 30)."""


def vgg19_features(n_modules: int | None = None) -> nn.Sequential:
    """torchvision's ``vgg19().features`` layout (randomly initialised), optionally truncated.

    Args:
        n_modules: keep the first ``n_modules`` modules (37, all, by default).

    Returns:
        ``nn.Sequential`` of ``Conv2d(3 × 3, padding 1)``, ``ReLU`` and ``MaxPool2d(2, 2)``
        with torchvision's indices.
    """
    return _features(_CFG_E, n_modules)


def vgg16_features(n_modules: int | None = None) -> nn.Sequential:
    """torchvision's ``vgg16().features`` layout (randomly initialised), optionally truncated.

    Args:
        n_modules: keep the first ``n_modules`` modules (31, all, by default).

    Returns:
        as :func:`vgg19_features`, with configuration "D" (2-2-3-3-3 convolutions).
    """
    return _features(_CFG_D, n_modules)


def _features(cfg: list[int | str], n_modules: int | None) -> nn.Sequential:
    layers: list[nn.Module] = []
    c_in = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            assert isinstance(v, int)
            layers += [nn.Conv2d(c_in, v, kernel_size=3, padding=1), nn.ReLU()]
            c_in = v
    return nn.Sequential(*layers[:n_modules])


def default_vgg19_path() -> Path:
    """``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``: where torchvision caches it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def default_vgg16_path() -> Path:
    """``<torch.hub.get_dir()>/checkpoints/vgg16-397923af.pth``: where torchvision caches it."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME


# arch -> (configuration, layer names, file name, URL, default path, what to do when missing)
_ARCHS = {
    "vgg19": (
        _CFG_E,
        VGG19_LAYERS,
        VGG19_FILENAME,
        VGG19_URL,
        default_vgg19_path,
        "for the perceptual loss",
        ", or pass its path as vgg_weights_path, or set vgg_weight=0 to train without "
        "the perceptual loss",
    ),
    "vgg16": (
        _CFG_D,
        VGG16_LAYERS,
        VGG16_FILENAME,
        VGG16_URL,
        default_vgg16_path,
        "(LPIPS)",
        ", or pass its path",
    ),
}


def _load_state(
    weights: str | Path | Mapping[str, Tensor] | None, arch: str = "vgg19"
) -> Mapping[str, Tensor]:
    _, _, filename, url, default_path, purpose, advice = _ARCHS[arch]
    name = arch.upper()
    if isinstance(weights, Mapping):
        return weights
    path = default_path() if weights is None else Path(weights).expanduser()
    if not path.is_file():
        raise MissingDependencyError(
            f"the {name} ImageNet weights {purpose} are missing: put "
            f"torchvision's {filename} (from {url}) at {path}"
            + (" (the torch hub cache)" if weights is None else "")
            + advice,
            path=path,
        )
    return read_state_dict(path, f"torchvision's {filename}")


class VGGFeatures(nn.Module):
    """Frozen ImageNet VGG19 (or VGG16) returning the activations of chosen layers.

    The network is truncated after the deepest requested layer. Its parameters never require
    gradients (gradients still flow to the input), it stays in eval mode, and its weights are
    left out of the ``state_dict()`` of any module that contains it, so checkpoints do not
    carry 80 MB of fixed ImageNet weights; loading such a checkpoint keeps the weights read
    here.

    Args:
        layers: names of the layers to return, e.g. ``"relu3_4"`` (see :data:`VGG19_LAYERS`:
            ``conv{b}_{k}``, ``relu{b}_{k}``, ``pool{b}``).
        weights: torchvision's ``vgg19-dcbb9e9d.pth`` (path), a state dict with its keys, or
            ``None`` for the torch hub cache (:func:`default_vgg19_path`).
        input_range: ``(low, high)`` of the input images, mapped to ``[0, 1]`` before the
            ImageNet normalisation: ``(-1, 1)`` (default, the renderer's images) or ``(0, 1)``.

    Raises:
        MissingDependencyError: the weight file does not exist (the message says where to put
            it).
        InputError: the file is not a VGG19 state dict of torchvision's format.
    """

    def __init__(
        self,
        layers: Sequence[str] = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4"),
        weights: str | Path | Mapping[str, Tensor] | None = None,
        input_range: tuple[float, float] = (-1.0, 1.0),
        arch: str = "vgg19",
    ) -> None:
        super().__init__()
        if arch not in _ARCHS:
            raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
        cfg, names, filename, _, default_path, _, _ = _ARCHS[arch]
        layers = list(layers)
        unknown = [name for name in layers if name not in names]
        if not layers or unknown:
            raise ValueError(
                f"unknown {arch.upper()} layer names {unknown or '(none given)'}; valid names "
                f"are {', '.join(names)}"
            )
        low, high = (float(v) for v in input_range)
        if not high > low:
            raise ValueError(f"input_range must be (low, high) with high > low, got {input_range}")
        self.layers = layers
        self.arch = arch
        self.input_range = (low, high)
        self._index = {name: names[name] for name in layers}
        n_modules = max(self._index.values()) + 1
        self.features = _features(cfg, n_modules)

        state = _load_state(weights, arch)
        own = self.features.state_dict()
        wanted = {f"features.{k}": tuple(v.shape) for k, v in own.items()}
        if problems := state_dict_problems(state, wanted):
            where = weights if isinstance(weights, str | Path) else default_path()
            source = "the given state dict" if isinstance(weights, Mapping) else str(where)
            raise InputError(
                f"{source} is not a torchvision {arch.upper()} state dict ({filename}): "
                + summarize_problems(problems)
            )
        self.features.load_state_dict({k: state[f"features.{k}"] for k in own})
        self.features.requires_grad_(False)
        super().train(False)

        scale = 1.0 / (high - low)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        # x_norm = ((x - low) * scale - mean) / std = x * a + b
        self.register_buffer("_a", scale / std, persistent=False)
        self.register_buffer("_b", (-low * scale - mean) / std, persistent=False)
        self.register_state_dict_post_hook(_drop_own_keys)
        self.register_load_state_dict_pre_hook(_fill_own_keys)

    def extra_repr(self) -> str:
        return f"arch={self.arch}, layers={self.layers}, input_range={self.input_range}"

    def train(self, mode: bool = True) -> VGGFeatures:
        """Kept in eval mode whatever ``mode`` is (the network is frozen)."""
        super().train(False)
        return self

    def normalize(self, images: Tensor) -> Tensor:
        """Map ``input_range`` to ``[0, 1]`` then apply the ImageNet mean / std.

        Args:
            images: ``(B, 3, H, W)`` float in ``input_range``.

        Returns:
            ``(B, 3, H, W)`` normalised images.
        """
        return images * self._a.to(images.dtype) + self._b.to(images.dtype)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Activations of the requested layers.

        Args:
            images: ``(B, 3, H, W)`` float RGB in ``input_range``; H, W >= 2 ** (number of
                poolings before the deepest layer).

        Returns:
            ``{layer name: (B, C_layer, H_layer, W_layer)}`` in the order of ``layers``.
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"VGGFeatures expects RGB images (B, 3, H, W), got {shape}")
        h = self.normalize(images)
        wanted = {index: name for name, index in self._index.items()}
        out: dict[str, Tensor] = {}
        for i, module in enumerate(self.features):
            h = module(h)
            if i in wanted:
                out[wanted[i]] = h
        return {name: out[name] for name in self.layers}


def _drop_own_keys(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any
) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "features.")]:
        del state_dict[key]


def _fill_own_keys(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: Any,
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    for name, tensor in module.features.state_dict().items():
        state_dict.setdefault(f"{prefix}features.{name}", tensor)
