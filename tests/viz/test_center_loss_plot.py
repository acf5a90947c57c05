"""Center loss picture: the spread measures, and that the intra-class spread shrinks as lambda grows."""
import numpy as np
import pytest

from layerwise.viz.center_loss import main, spread, train_center_loss


def test_spread_by_hand():
    f = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0], [10.0, 2.0]])
    y = np.array([0, 0, 1, 1])
    within, ratio = spread(f, y)
    assert within == pytest.approx(1.0)                        # every point 1 away from its class mean
    total2 = np.mean(np.sum((f - f.mean(0)) ** 2, axis=1))
    assert ratio == pytest.approx(1.0 / total2)
    assert spread(3 * f, y)[1] == pytest.approx(ratio)         # the ratio is scale-free


def test_tiny_run_spread_shrinks_as_lambda_grows():
    runs = train_center_loss((0.0, 0.1, 1.0), epochs=25, n_train=400, batch_size=32, seed=0)
    within = [r.within for r in runs]
    assert within[0] > within[1] > within[2]                   # absolute intra-class spread
    assert runs[2].ratio < runs[0].ratio                       # and its share of the feature variance
    assert all(r.accuracy > 0.7 for r in runs)                 # the features still separate the classes
    assert runs[0].features.shape == (len(runs[0].labels), 2)
    again = train_center_loss((0.1,), epochs=25, n_train=400, batch_size=32, seed=0)[0]
    np.testing.assert_array_equal(again.features, runs[1].features)   # seeded: the same picture twice


def test_cli_prints_the_spreads_and_writes_the_png(tmp_path, capsys):
    out = tmp_path / "cl.png"
    assert main(["--out", str(out), "--lambdas", "0,1", "--epochs", "2", "--dpi", "30"]) == 0
    text = capsys.readouterr().out
    assert text.count("intra-class spread") == 2 and out.read_bytes()[:4] == b"\x89PNG"
    for bad in (["--lambdas", "a,b"], ["--lambdas", "-1"], ["--epochs", "0"]):
        with pytest.raises(SystemExit):
            main(bad + ["--out", str(out)])
