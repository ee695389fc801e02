"""`--drop-highest K` with K at or above the table's rows is refused naming the flag and the
row count (a negative slice kept len - K rows of the wrong end: 200 on 124 rows fitted 48)."""

import pytest

from scalinglab.errors import ConfigError
from scalinglab.laws.table import read_table
from tests.laws.test_cli_fit import GOOD, _write
from tests.reliability.helpers import one_line_error


@pytest.mark.parametrize("k", ["9", "200"])
def test_drop_highest_of_every_row_or_more_is_one_line(tmp_path, capsys, k):
    path = _write(tmp_path, GOOD)  # 9 rows
    out = tmp_path / "fit.json"
    argv = ["fit", path, "--bootstrap", "0", "--drop-highest", k, "--out", str(out)]
    want = f"error: {path}: --drop-highest {k} must be less than the number of rows (9)\n"
    assert one_line_error(capsys, argv) == want
    assert not out.exists()


def test_drop_highest_counts_the_rows_left_after_where(tmp_path, capsys):
    path = _write(tmp_path, GOOD)  # 3 rows of params 1e7
    argv = ["fit", path, "--bootstrap", "0", "--where", "N=1e7", "--drop-highest", "3"]
    want = (f"error: {path}: --drop-highest 3 must be less than the number of rows left "
            "after --where/--min-over (3)\n")  # fmt: skip
    assert one_line_error(capsys, argv) == want


def test_drop_highest_from_python_names_the_keyword():
    cols = {"params": [1e7, 1e8], "tokens": [1e9, 1e9], "loss": [3.0, 2.9]}
    with pytest.raises(ConfigError) as e:
        read_table(cols, drop_highest=2)
    assert str(e.value) == "<dict>: drop_highest 2 must be less than the number of rows (2)"
    assert len(read_table(cols, drop_highest=1)) == 1
