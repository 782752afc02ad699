import pytest
import torch

from medssl_monai.networks import MLPHead, PredictionHead, SiamEncoder3D, SSLNetwork


def _trunk_shapes(encoder: SiamEncoder3D, size: int) -> list[tuple[int, ...]]:
    """Spatial shapes after each max-pool (forward hooks)."""
    shapes = []
    hook = encoder.pool.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:])))
    encoder.eval()
    with torch.no_grad():
        out = encoder(torch.zeros(1, 1, size, size, size))
    hook.remove()
    assert out.shape == (1, 256)
    return shapes


def test_table4_shapes_96():
    torch.manual_seed(0)
    encoder = SiamEncoder3D()
    assert _trunk_shapes(encoder, 96) == [(32,) * 3, (10,) * 3, (3,) * 3]
    with torch.no_grad():
        assert encoder.eval().features(torch.zeros(1, 1, 96, 96, 96)).shape == (1, 256, 3, 3, 3)


@pytest.mark.parametrize("size,expected", [(27, [9, 3, 1]), (28, [9, 3, 1]), (64, [21, 7, 2])])
def test_small_inputs(size, expected):
    assert [s[0] for s in _trunk_shapes(SiamEncoder3D(), size)] == expected


def test_layers_match_table4():
    enc = SiamEncoder3D()
    convs = [m for m in enc.modules() if isinstance(m, torch.nn.Conv3d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [
        (1, 32, 3),
        (32, 32, 1),
        (32, 32, 3),
        (32, 32, 1),
        (32, 32, 1),
        (32, 32, 3),
        (32, 32, 1),
        (32, 64, 3),
        (64, 128, 3),
        (128, 256, 3),
    ]
    assert all(c.stride == (1, 1, 1) for c in convs)
    assert enc.pool.kernel_size == 3 and enc.pool.stride == 3 and enc.pool.padding == 0
    dense = [m for m in enc.head if isinstance(m, torch.nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(256, 324), (324, 256)]


def test_rejects_small_or_2d_input():
    enc = SiamEncoder3D()
    with pytest.raises(ValueError, match="at least 27"):
        enc(torch.zeros(2, 1, 26, 30, 30))
    with pytest.raises(ValueError, match=r"\(B, C, D, H, W\)"):
        enc(torch.zeros(2, 1, 30, 30))


def test_checkpointing_gives_same_output_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28, 28)
    plain = SiamEncoder3D()
    ckpt = SiamEncoder3D(checkpoint=True)
    ckpt.load_state_dict(plain.state_dict())
    out_a, out_b = plain(x), ckpt(x)
    torch.testing.assert_close(out_a, out_b)
    out_a.square().sum().backward()
    out_b.square().sum().backward()
    ga = plain.full_resolution[0].weight.grad
    gb = ckpt.full_resolution[0].weight.grad
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_checkpoint_min_size_gates_recomputation(monkeypatch):
    calls = []
    enc = SiamEncoder3D(checkpoint=True, checkpoint_min_size=30)
    original = enc._full_resolution_checkpointed
    monkeypatch.setattr(enc, "_full_resolution_checkpointed", lambda x: calls.append(x.shape) or original(x))
    enc(torch.randn(2, 1, 28, 28, 28))
    assert calls == []
    enc(torch.randn(2, 1, 30, 30, 30))
    assert len(calls) == 1
    with torch.no_grad():  # never in inference
        enc(torch.randn(2, 1, 30, 30, 30))
    assert len(calls) == 1


def test_channels_last_3d_same_output():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28, 28)
    enc = SiamEncoder3D().eval()
    with torch.no_grad():
        ref = enc(x)
        enc.to(memory_format=torch.channels_last_3d)
        out = enc(x.contiguous(memory_format=torch.channels_last_3d))
    torch.testing.assert_close(ref, out, rtol=1e-4, atol=1e-5)


def test_prediction_head_bottleneck():
    head = PredictionHead(256)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 64), (64, 256)]
    assert isinstance(head.layers[1], torch.nn.BatchNorm1d) and isinstance(head.layers[2], torch.nn.ReLU)
    assert head(torch.randn(4, 256)).shape == (4, 256)


def test_mlp_head_layout():
    head = MLPHead([(8, 16, True, True), (16, 4, False, False)])
    kinds = [type(m).__name__ for m in head.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Linear"]


def test_ssl_network_outputs():
    net = SSLNetwork(SiamEncoder3D(), predictor=PredictionHead(256))
    out = net(torch.randn(2, 1, 28, 28, 28))
    assert set(out) == {"embedding", "projection", "prediction"}
    assert out["projection"] is out["embedding"]
    assert out["prediction"].shape == (2, 256)
    assert "prediction" not in SSLNetwork(torch.nn.Flatten())(torch.randn(2, 3))


def test_torchscript_export_matches_eager():
    enc = SiamEncoder3D().eval()
    scripted = torch.jit.script(enc)
    x = torch.randn(1, 1, 30, 30, 30)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), enc(x))
