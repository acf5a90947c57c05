"""The activation table's numbers: every activation layer drawn, f' from backward = the slope of forward."""
import numpy as np

from layerwise.layers import activations as A
from layerwise.viz.activations import activation_curves, main


def test_every_activation_layer_has_a_panel():
    curves = activation_curves(n=41)
    drawn = {type(make()).__name__ for make in __import__("layerwise.viz.activations", fromlist=["_table"])
             ._table().values()}
    assert drawn == {n for n in A.__all__ if n != "Swish"}               # Swish is SiLU's alias
    assert len(curves) == 16


def test_backward_curve_is_the_slope_of_the_forward_curve():
    curves = activation_curves(-4.0, 4.0, 1601)                        # step 0.005
    for name, (x, y, d) in curves.items():
        slope = (y[2:] - y[:-2]) / (x[2:] - x[:-2])                    # central differences of the picture
        mid = x[1:-1]
        kinks = np.array([0.0, -1.0, 1.0, -3.0, 3.0])                   # ReLU family, HardTanh, HardSigmoid
        away = np.min(np.abs(mid[:, None] - kinks[None, :]), axis=1) > 0.01
        # central differences with h = 0.005 are off by h^2 |f'''| / 6 < 1e-4; a wrong derivative by far more
        np.testing.assert_allclose(d[1:-1][away], slope[away], rtol=0, atol=1e-4, err_msg=name)


def test_values_the_table_states():
    c = activation_curves(-4.0, 4.0, 801)
    i0 = 400                                                           # x = 0
    assert c["Sigmoid"][1][i0] == 0.5 and c["Sigmoid"][2][i0] == 0.25
    assert c["TanH"][2][i0] == 1.0
    x, y, d = c["RReLU (eval; training range)"]
    np.testing.assert_allclose(d[x < 0], (1 / 8 + 1 / 3) / 2)          # the mean slope, deterministic
    np.testing.assert_allclose(c["PReLU (w = 0.25)"][2][x < 0], 0.25)


def test_cli_writes_the_png(tmp_path, capsys):
    out = tmp_path / "a.png"
    assert main(["--out", str(out), "--dpi", "30"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG" and "16 activations" in capsys.readouterr().out
