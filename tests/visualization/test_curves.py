"""`show curves`' reader and picture, on the committed CHM CIFAR-10 runs and on hostile files."""

import pathlib

import pytest

from alexnet_keras.visualization.curves import COLUMNS, draw_curves, epoch_axes, read_metrics
from tests.visualization.conftest import assert_a_picture

pytest.importorskip("matplotlib")

METRICS = pathlib.Path(__file__).resolve().parents[2] / "examples" / "chm_cifar10" / "metrics"
HEADER = ",".join(COLUMNS) + "\r\n"  # csv.DictWriter's line end, as the trainer writes
ROW = "{},390,1.0,1.9,0.29,1.6,0.39,0.88,41.0,1215.6\r\n"


def test_the_committed_runs_read_as_numbers():
    runs = {p.stem: read_metrics(p) for p in sorted(METRICS.glob("*.csv"))}
    assert len(runs) >= 7  # more land as the runs finish
    s0 = runs["18pct-2011-s0"]
    assert s0.name == "18pct-2011-s0" and s0.partial_line is None
    assert len(s0.columns["epoch"]) == 140 and s0.columns["epoch"][-1] == 140
    assert round(100 * (1 - s0.columns["val_top1"][-1]), 2) == 19.68  # examples/chm_cifar10
    assert list(s0.columns["lr"][[119, 120, 130]].round(4)) == [1.0, 0.1, 0.01]


def test_the_18pct_seeds_overlay(tmp_path):
    runs = sorted(METRICS.glob("18pct-2011-s*.csv"))
    pixels = assert_a_picture(draw_curves(runs, tmp_path / "c.png", target=18))
    assert pixels.shape[:2] == (600, 800)


def test_the_title_of_six_runs_stays_inside_the_picture(tmp_path, monkeypatch):
    import alexnet_keras.visualization.curves as curves

    figures = []
    save_png = curves.save_png
    monkeypatch.setattr(
        curves, "save_png", lambda fig, out: figures.append(fig) or save_png(fig, out)
    )
    assert_a_picture(draw_curves(sorted(METRICS.glob("18pct-*.csv")), tmp_path / "c.png"))
    fig = figures[0]
    (title,) = [t for t in fig.texts if t.get_text().startswith("eval top-1 error")]
    assert "(+2 more)" in title.get_text()
    fig.draw_without_rendering()
    box = title.get_window_extent(fig.canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, box


def test_phases_chain_on_one_epoch_axis(tmp_path):
    # Methodology's protocol: phase b starts from phase a's weights and goes on from its epoch.
    a, b = (read_metrics(METRICS / f"{n}.csv") for n in ("80sec-2011-drop8", "80sec-2011"))
    chained = epoch_axes([a, b], chain=True)
    assert (chained[0][0], chained[0][-1], chained[1][0], chained[1][-1]) == (1, 10, 11, 40)
    overlaid = epoch_axes([a, b])
    assert (overlaid[1][0], overlaid[1][-1]) == (1, 30)
    assert_a_picture(draw_curves([a, b], tmp_path / "c.png", chain=True))


def test_a_run_folder_is_named_by_the_folder(tmp_path):
    run = tmp_path / "18pct-2011-s0"
    run.mkdir()
    (run / "metrics.csv").write_bytes((METRICS / "18pct-2011-s0.csv").read_bytes())
    assert read_metrics(run).name == "18pct-2011-s0"
    assert read_metrics(run / "metrics.csv").name == "18pct-2011-s0"


def test_a_live_runs_unfinished_last_line_is_left_out(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + ROW.format(1) + ROW.format(2) + "3,1170,1.0,1.3", newline="")
    metrics = read_metrics(path)
    assert list(metrics.columns["epoch"]) == [1, 2] and metrics.partial_line == 4


@pytest.mark.parametrize("text, message", [
    ("", "metrics.csv: the file is empty"),
    ("epoch,step,lo", "metrics.csv: line 1: the header is unfinished"),
    ("a,b\n1,2\n", "metrics.csv: line 1: the header lacks epoch, lr, train_loss"),
    (HEADER, "metrics.csv: no epoch yet"),
    (HEADER + ROW.format(1) + ROW.format(2).replace("0.39", "abc"),
     "metrics.csv: line 3: val_top1 is 'abc', not a number"),
    (HEADER + ROW.format(1) + "2,780,1.0\n", "metrics.csv: line 3: 3 cells; the header has 10"),
    ("\xff\xfe" + HEADER, "metrics.csv: not UTF-8 text"),
])  # fmt: skip
def test_hostile_files_are_one_line_naming_file_and_line(tmp_path, text, message):
    path = tmp_path / "metrics.csv"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match=message) as info:
        read_metrics(tmp_path)
    assert "\n" not in str(info.value)


def test_a_missing_run(tmp_path):
    with pytest.raises(ValueError, match="nope: no such run folder or metrics.csv file"):
        read_metrics(tmp_path / "nope")
    with pytest.raises(ValueError, match="metrics.csv: no such file"):
        read_metrics(tmp_path)  # a folder without a metrics.csv
