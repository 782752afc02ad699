"""SimCLR projector and VICReg expander (small-data SSL heads): layouts and shapes, any input width."""

import pytest
import torch

from medssl_monai.networks import SimCLRProjectionHead, SSLNetwork, VICRegExpander


def _layout(head: torch.nn.Module) -> list:
    return [
        (type(m).__name__, m.in_features, m.out_features, m.bias is not None)
        if isinstance(m, torch.nn.Linear)
        else type(m).__name__
        for m in head.layers
    ]


def test_simclr_projector_layout_and_shape():
    head = SimCLRProjectionHead(64)
    assert _layout(head) == [("Linear", 64, 64, False), "BatchNorm1d", "ReLU", ("Linear", 64, 128, True)]
    assert head(torch.randn(5, 64)).shape == (5, 128)
    paper2 = SimCLRProjectionHead(2048, hidden_features=512)
    assert [m.out_features for m in paper2.layers if isinstance(m, torch.nn.Linear)] == [512, 128]


def test_vicreg_expander_default_is_paper2_two_layers_4096():
    head = VICRegExpander(32)
    assert _layout(head) == [("Linear", 32, 4096, False), "BatchNorm1d", "ReLU", ("Linear", 4096, 4096, True)]
    assert head(torch.randn(3, 32)).shape == (3, 4096)


def test_vicreg_expander_three_layers_as_vicreg_paper():
    head = VICRegExpander(16, hidden_features=24, out_features=40, num_layers=3)
    linears = [(m.in_features, m.out_features) for m in head.layers if isinstance(m, torch.nn.Linear)]
    assert linears == [(16, 24), (24, 24), (24, 40)]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in head.layers) == 2
    assert head(torch.randn(4, 16)).shape == (4, 40)
    assert VICRegExpander(7, out_features=9, num_layers=1)(torch.randn(2, 7)).shape == (2, 9)
    with pytest.raises(ValueError, match="num_layers"):
        VICRegExpander(8, num_layers=0)


@pytest.mark.parametrize("width", [3, 50])
def test_heads_compose_into_ssl_network(width):
    backbone = torch.nn.Linear(10, width)
    for head, out in ((SimCLRProjectionHead(width), 128), (VICRegExpander(width, 32, 64), 64)):
        o = SSLNetwork(backbone, projector=head)(torch.randn(6, 10))
        assert o["embedding"].shape == (6, width) and o["projection"].shape == (6, out)
