"""Import of the authors' released Audio2ExpressionNet checkpoint, and parity with it.

The fast tests use a random state_dict in the release's layout and a re-statement of the
release's forward pass (Conv2d on the transposed window, as the authors' module does it).
The ``realdata`` tests load the released ``a2e_latest_netG.pth`` and compare against the
reference outputs computed with the authors' own code (``nvp_release/README.md`` in the
shared data folder); they are skipped with a reason where that folder is absent.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nvp.a2e.official import (
    OFFICIAL_SHAPES,
    load_official_checkpoint,
    load_official_state_dict,
    official_to_nvp,
)
from nvp.errors import InputError
from nvp.nets import Audio2ExpressionNet, count_parameters, release_config, window_indices


def _data_root() -> Path:
    env = os.environ.get("NVP_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


RELEASE = _data_root() / "nvp_release"
CHECKPOINT = RELEASE / "a2e_latest_netG.pth"


def fake_official(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the release's keys and shapes (small, so tanh is not saturated)."""
    g = torch.Generator().manual_seed(seed)
    return {k: 0.05 * torch.randn(shape, generator=g) for k, shape in OFFICIAL_SHAPES.items()}


def official_forward(
    sd: dict[str, torch.Tensor], windows: torch.Tensor, identity: int
) -> dict[str, torch.Tensor]:
    """The release's ``Audio2ExpressionsAttentionTMP4`` forward pass, re-stated functionally.

    ``windows``: (B, 8, 16, 29). Reshaped to (B*8, 1, 16, 29) and transposed to
    (B*8, 29, 16, 1); Conv2d (3, 1), stride (2, 1), padding (1, 0), LeakyReLU 0.02, 0.02, 0.2,
    0.2; Linear 64-128-64-32 with LeakyReLU 0.02 and tanh; filter Conv1d x 5 with LeakyReLU
    0.02 after each, Linear(8, 8), softmax; 10 * bmm(mapping, .).
    """
    b = windows.shape[0]
    h = windows.reshape(b * 8, 1, 16, 29).transpose(1, 3)
    for i, slope in zip([0, 2, 4, 6], [0.02, 0.02, 0.2, 0.2]):
        w, bias = sd[f"convNet.{i}.weight"], sd[f"convNet.{i}.bias"]
        h = F.leaky_relu(F.conv2d(h, w, bias, stride=(2, 1), padding=(1, 0)), slope)
    h = h.reshape(b * 8, 1, -1)
    h = F.leaky_relu(F.linear(h, sd["fullNet.0.weight"], sd["fullNet.0.bias"]), 0.02)
    h = F.leaky_relu(F.linear(h, sd["fullNet.2.weight"], sd["fullNet.2.bias"]), 0.02)
    ae = torch.tanh(F.linear(h, sd["fullNet.4.weight"], sd["fullNet.4.bias"]))[:, 0, :]
    ae_t = ae.view(b, 8, 32).transpose(1, 2)  # (B, 32, 8)
    a = ae_t
    for i in [0, 2, 4, 6, 8]:
        w, bias = sd[f"attentionConvNet.{i}.weight"], sd[f"attentionConvNet.{i}.bias"]
        a = F.leaky_relu(F.conv1d(a, w, bias, padding=1), 0.02)
    logits = F.linear(a.view(b, 8), sd["attentionNet.0.weight"], sd["attentionNet.0.bias"])
    weights = torch.softmax(logits, dim=1)
    filtered = torch.bmm(ae_t, weights.view(b, 8, 1))
    mapping = sd["mapping"][0][[identity] * b]
    return {
        "per_frame": ae_t.transpose(1, 2),
        "logits": logits,
        "weights": weights,
        "filtered": filtered[:, :, 0],
        "expression": 10.0 * torch.bmm(mapping, filtered)[:, :, 0],
        "intermediate": 10.0 * torch.bmm(mapping, ae_t[:, :, 4:5])[:, :, 0],
    }


class TestOfficialToNvp:
    def test_smoke(self):
        cfg, sd, n_sequences, expression_dim = official_to_nvp(fake_official())
        assert (n_sequences, expression_dim) == (116, 76)
        assert cfg == release_config()
        net = Audio2ExpressionNet(cfg, n_sequences, expression_dim)
        net.load_state_dict(sd, strict=True)
        assert len(sd) == len(OFFICIAL_SHAPES) == 27
        assert count_parameters(net) == sum(v.numel() for v in fake_official().values())

    def test_exact_copies(self):
        official = fake_official()
        _, sd, _, _ = official_to_nvp(official)
        assert torch.equal(sd["mapping"], official["mapping"][0])
        assert torch.equal(sd["per_frame.conv.4.weight"], official["convNet.4.weight"][..., 0])
        assert torch.equal(sd["per_frame.fc.2.bias"], official["fullNet.2.bias"])
        assert torch.equal(
            sd["temporal_filter.conv.8.weight"], official["attentionConvNet.8.weight"]
        )
        assert torch.equal(sd["temporal_filter.linear.weight"], official["attentionNet.0.weight"])
        copied = sorted(v.flatten().sort().values.sum().item() for v in sd.values())
        source = sorted(v.flatten().sort().values.sum().item() for v in official.values())
        assert copied == source
        sd["mapping"].add_(1.0)  # copies, not views of the input
        assert not torch.equal(sd["mapping"], official["mapping"][0])

    @pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-13)])
    def test_feature_against_release_forward(self, dtype, tol):
        official = {k: v.to(dtype) for k, v in fake_official(seed=3).items()}
        cfg, sd, n_seq, k = official_to_nvp(official)
        net = Audio2ExpressionNet(cfg, n_seq, k).to(dtype)
        net.load_state_dict(sd)
        windows = torch.randn(6, 8, 16, 29, dtype=dtype)
        with torch.no_grad():
            ref = official_forward(official, windows, identity=5)
            out = net(windows, sequence=torch.full((6,), 5))
        assert ref["per_frame"].abs().max() < 0.9  # tanh not saturated
        for key, value in ref.items():
            torch.testing.assert_close(out[key], value, rtol=tol, atol=tol, msg=key)

    def test_exception(self):
        official = fake_official()
        del official["attentionNet.0.bias"]
        with pytest.raises(InputError, match=r"missing keys \['attentionNet\.0\.bias'\]"):
            official_to_nvp(official)
        official = fake_official()
        official["convNet.0.weight"] = torch.zeros(32, 80, 3, 1)
        with pytest.raises(InputError, match=r"convNet\.0\.weight \(32, 80, 3, 1\)"):
            official_to_nvp(official)
        official = fake_official()
        official["module.extra"] = torch.zeros(1)
        with pytest.raises(InputError, match="unexpected keys"):
            official_to_nvp(official)


class TestLoadOfficialStateDict:
    def test_round_trip(self, tmp_path):
        path = tmp_path / "latest_netG.pth"
        official = fake_official()
        torch.save(official, path)
        loaded = load_official_state_dict(path)
        assert all(torch.equal(loaded[k], v) for k, v in official.items())
        net = load_official_checkpoint(path)
        assert not net.training
        assert torch.equal(net.mapping.detach(), official["mapping"][0])

    def test_missing_file(self, tmp_path):
        path = tmp_path / "absent.pth"
        with pytest.raises(InputError, match=r"absent\.pth: .*not found"):
            load_official_state_dict(path)

    def test_unreadable_file(self, tmp_path):
        path = tmp_path / "garbage.pth"
        path.write_bytes(b"this is not a checkpoint")
        with pytest.raises(InputError, match=r"garbage\.pth: cannot read"):
            load_official_state_dict(path)

    def test_not_a_state_dict(self, tmp_path):
        path = tmp_path / "list.pth"
        torch.save([torch.zeros(3)], path)
        with pytest.raises(InputError, match=r"list\.pth: expected a state_dict"):
            load_official_state_dict(path)

    def test_other_network(self, tmp_path):
        path = tmp_path / "other.pth"
        torch.save(torch.nn.Linear(3, 4).state_dict(), path)
        with pytest.raises(InputError, match=r"other\.pth: not the released"):
            load_official_state_dict(path)


# --------------------------------------------------------------------------------------------
# Parity with the authors' reference outputs.

#: (nvp output key, reference array, atol against the float32 reference arrays).
F32_TOLERANCES = [
    ("per_frame", "window_audio_expr", 1e-7),
    ("weights", "filter_weights", 1e-6),
    ("filtered", "filtered_audio_expr", 1e-7),
    ("expression", "expr_identity0", 2e-6),
    ("intermediate", "expr_intermediate_identity0", 2e-6),
]
#: Arrays that also have a float64 (``*_f64``) reference; compared with atol 1e-10.
F64_KEYS = [
    ("per_frame", "window_audio_expr"),
    ("logits", "filter_logits"),
    ("weights", "filter_weights"),
    ("filtered", "filtered_audio_expr"),
    ("expression", "expr_identity0"),
    ("intermediate", "expr_intermediate_identity0"),
]


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def release(one_thread) -> Audio2ExpressionNet:
    if not CHECKPOINT.is_file():
        pytest.skip(f"{CHECKPOINT} not found: set NVP_DATA to the folder holding nvp_release/")
    return load_official_checkpoint(CHECKPOINT)


def _load(name: str) -> np.ndarray | dict[str, np.ndarray]:
    path = RELEASE / name
    if path.suffix == ".npz":
        with np.load(path) as z:
            return dict(z)
    return np.load(path)


def _compare(out: dict[str, torch.Tensor], ref: dict[str, np.ndarray], n: int, f64: bool):
    """Max abs differences of every reference array; asserts the tolerances."""
    diffs = {}
    if f64:
        for key, name in F64_KEYS:
            got = out[key][:n].numpy()
            diffs[name] = float(np.abs(got - ref[f"{name}_f64"]).max())
            np.testing.assert_allclose(got, ref[f"{name}_f64"], rtol=0, atol=1e-10, err_msg=name)
        return diffs
    for key, name, atol in F32_TOLERANCES:
        got = out[key][:n].numpy()
        diffs[name] = float(np.abs(got - ref[name]).max())
        np.testing.assert_allclose(got, ref[name], rtol=0, atol=atol, err_msg=name)
    # The window's centre slot: equal up to float32 rounding. Bit-equality held on one CPU
    # and not on another (AVX-512 kernels round 3 of 7,712 values one ulp differently), so
    # the check allows 2 ulps; a wrong slot or layer differs by millions.
    np.testing.assert_array_max_ulp(
        out["per_frame"][:n, 3].numpy(), ref["per_frame_audio_expr"], maxulp=2
    )
    # The logits reach |20|: a batched evaluation differs from the reference's batch-size-1
    # run by a few float32 ulps of that size, so they are compared relatively.
    got = out["logits"][:n].numpy()
    diffs["filter_logits"] = float(np.abs(got - ref["filter_logits"]).max())
    np.testing.assert_allclose(got, ref["filter_logits"], rtol=1e-6, atol=1e-6)
    return diffs


@pytest.mark.realdata
class TestReleaseParity:
    def test_checkpoint(self, release):
        assert count_parameters(release) == 327_397
        assert release.cfg == release_config()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_greta(self, release, dtype):
        ref = _load("ref_greta.npz")
        feats = torch.from_numpy(_load("greta_features.npy"))
        n = feats.shape[0]
        assert n == 241
        net = release.to(dtype)
        try:
            with torch.no_grad():
                out = net.sequence_forward(feats.to(dtype), sequence=0)
        finally:
            release.float()
        np.testing.assert_array_equal(out["window_index"].numpy(), ref["window_frame_index"])
        np.testing.assert_array_equal(ref["frame_index"], np.arange(n))
        _compare(out, ref, n, f64=dtype == torch.float64)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_trump_first200(self, release, dtype):
        ref = _load("ref_trump_first200.npz")
        feats = torch.from_numpy(_load("trump_features.npy"))
        assert feats.shape == (4038, 16, 29)
        index = window_indices(feats.shape[0], seq_len=8, current_slot=3)[:200]
        np.testing.assert_array_equal(index.numpy(), ref["window_frame_index"])
        net = release.to(dtype)
        try:
            with torch.no_grad():
                out = net(feats[index].to(dtype), sequence=torch.zeros(200, dtype=torch.long))
        finally:
            release.float()
        _compare(out, ref, 200, f64=dtype == torch.float64)

    def test_trump_whole_sequence(self, release):
        """sequence_forward over all 4038 frames = the windows above = transfer.py's data."""
        ref = _load("ref_trump_first200.npz")
        transfer = _load("ref_transfer_greta_to_trump.npz")
        feats = torch.from_numpy(_load("trump_features.npy"))
        with torch.no_grad():
            out = release.sequence_forward(feats, sequence=0, batch=1000)
        _compare(out, ref, 200, f64=False)
        np.testing.assert_allclose(
            out["filtered"].numpy(), transfer["trump_filtered_audio_expr_all"], rtol=0, atol=1e-7
        )

    def test_conv_features(self, release):
        """The time convolutions alone: the release's ``convNet`` output (after its LeakyReLU)."""
        ref = _load("ref_greta.npz")
        feats = torch.from_numpy(_load("greta_features.npy"))
        windows = feats[torch.from_numpy(ref["window_frame_index"])].reshape(-1, 16, 29)
        with torch.no_grad():
            conv = release.per_frame.conv(windows.transpose(1, 2)).reshape(241, 8, 64)
        np.testing.assert_allclose(conv.numpy(), ref["window_conv_features"], rtol=0, atol=1e-7)

    def test_transfer_greta_to_trump(self, release):
        transfer = _load("ref_transfer_greta_to_trump.npz")
        feats = torch.from_numpy(_load("greta_features.npy"))
        with torch.no_grad():
            out = release.sequence_forward(feats, mapping=torch.from_numpy(transfer["mapping_fit"]))
        np.testing.assert_allclose(
            out["expression"].numpy(), transfer["greta_to_trump_expr"], rtol=0, atol=2e-6
        )
        # The closed-form map (entries up to ~9, so the ~1e-9 differences of the float32
        # audio-expressions grow to ~1e-7), applied in float64.
        lstsq = torch.from_numpy(transfer["mapping_lstsq_f64"])
        expr = release.expressions(out["filtered"].double(), lstsq).numpy()
        np.testing.assert_allclose(
            expr, transfer["greta_to_trump_expr_lstsq_f64"], rtol=0, atol=1e-6
        )
        ref_filtered = torch.from_numpy(_load("ref_greta.npz")["filtered_audio_expr"]).double()
        np.testing.assert_allclose(
            release.expressions(ref_filtered, lstsq).numpy(),
            transfer["greta_to_trump_expr_lstsq_f64"],
            rtol=0,
            atol=1e-12,
        )
