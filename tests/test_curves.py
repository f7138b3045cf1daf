import numpy as np
import pytest
from PIL import Image

from evaluation.curves import ema, plot_loss_curves, read_loss


def _write_log(live, name, values):
    d = live / "plots/metrics/loss"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.tsv").write_text("timestamp\tstep\t" + name + "\n" +
                                   "".join(f"0\t{i}\t{v}\n" for i, v in enumerate(values)))


def test_ema_is_bias_corrected_and_smooths():
    v = np.array([10.0, 0.0, 10.0, 0.0])
    s = ema(v, 0.5)
    assert s[0] == 10.0 and s.std() < v.std()
    assert np.allclose(ema(np.full(5, 3.0), 0.9), 3.0)


def test_loss_curve_figure_from_dvclive_logs(tmp_path):
    for m, scale in (("sanet", 2.0), ("sanet_safin", 1.0)):
        for loss in ("content", "style"):
            _write_log(tmp_path / m / "live", loss, scale * np.linspace(5, 1, 50))
    steps, values = read_loss(tmp_path / "sanet" / "live", "content")
    assert steps.tolist() == list(range(50)) and values[0] == 10.0
    out = plot_loss_curves(tmp_path, tmp_path / "fig.png")
    assert Image.open(out).size[0] > 600


def test_missing_log_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no 'content' loss log"):
        read_loss(tmp_path, "content")
