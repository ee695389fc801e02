"""Runs tables: one column in two roles, numeric --where, the default status filter, an
unclosed quote, a folder given as the table."""

from scalinglab.laws.table import read_table
from tests.reliability.helpers import one_line_error

ROWS = [(1e8, 2e9, 1e19, 3.1), (2e8, 4e9, 1e19, 2.9), (4e8, 8e9, 1e20, 2.7), (8e8, 2e10, 1e20, 2.5)]


def _csv(tmp_path, status=None):
    head = "params,tokens,budget,loss" + (",status" if status else "")
    body = [",".join(f"{v:g}" for v in r) + (f",{status}" if status else "") for r in ROWS]
    path = tmp_path / "runs.csv"
    path.write_text("\n".join([head, *body]) + "\n")
    return path


def test_one_column_in_two_roles_is_refused(tmp_path, capsys):
    p = _csv(tmp_path)
    assert one_line_error(capsys, ["fit", str(p), "--n-col", "loss"]) == (
        f"error: {p}: column 'loss' is given to both --n-col and --loss-col (found by its "
        "name); one column cannot be both parameters N and loss\n"
    )
    assert one_line_error(capsys, ["fit", str(p), "--n-col", "tokens", "--d-col", "tokens"]) == (
        f"error: {p}: column 'tokens' is given to both --n-col and --d-col; one column cannot "
        "be both parameters N and tokens D\n"
    )


def test_where_compares_numbers_written_differently(tmp_path):
    p = _csv(tmp_path)  # the cells say 1e+19
    assert "1e+19" in p.read_text()
    assert len(read_table(p, where=["budget=1e19"])) == 2
    assert len(read_table(p, where=["budget!=10000000000000000000"])) == 2


def test_the_default_status_filter_says_so(tmp_path, capsys):
    p = _csv(tmp_path, status="done")
    assert one_line_error(capsys, ["fit", str(p)]) == (
        f"error: {p}: the default filter status=completed matched no rows (statuses: 'done'); "
        "pick rows with --where status=VALUE\n"
    )
    assert len(read_table(p, where=["status=done"])) == 4


def test_an_unclosed_quote_names_its_line(tmp_path, capsys):
    p = tmp_path / "q.csv"
    p.write_text('params,tokens,loss\n1e6,2e7,3.1\n"2e6,4e7,2.9\n4e6,8e7,2.7\n')
    assert one_line_error(capsys, ["fit", str(p)]) == (
        f"error: {p}: line 3: 1 fields, the header has 3 "
        "(a quote opened on line 3 is never closed)\n"
    )
    p.write_text('params,tokens,loss\n1e6,2e7,3.1\n"2e6,4e7,2.9')
    assert one_line_error(capsys, ["fit", str(p)]).endswith(
        "line 3: 1 fields, the header has 3 (a quote opened on line 3 is never closed)\n"
    )


def test_a_folder_is_not_a_runs_table(tmp_path, capsys):
    want = (
        f"error: {tmp_path}: a folder, not a runs table; give a CSV file "
        f"(`scalinglab runs {tmp_path} --out runs.csv` writes one from run folders)\n"
    )
    assert one_line_error(capsys, ["fit", str(tmp_path)]) == want
    curve_law = ["fit", str(tmp_path), "--law", "multi-power", "--run-col", "schedule"]
    assert one_line_error(capsys, curve_law) == want  # the curve laws' reader said "no such file"


def test_the_default_status_filter_finds_a_status_column_in_any_case(tmp_path, capsys):
    """lr-opt found `Status` case-insensitively; the runs reader looked for `status` only,
    so a failed run entered a chinchilla fit silently."""
    p = tmp_path / "runs.csv"
    rows = [",".join(f"{v:g}" for v in r) for r in ROWS]
    p.write_text(
        "params,tokens,budget,loss,Status\n"
        + "".join(f"{r},{'failed' if i == 1 else 'completed'}\n" for i, r in enumerate(rows))
    )
    t = read_table(p)
    assert len(t) == 3 and "Status=completed" in t.conventions["filters"]
    assert len(read_table(p, where=["Status=failed"])) == 1  # a --where on it replaces it
    p.write_text(p.read_text().replace("completed", "done"))
    assert one_line_error(capsys, ["fit", str(p)]) == (
        f"error: {p}: the default filter Status=completed matched no rows (statuses: "
        "'done', 'failed'); pick rows with --where Status=VALUE\n"
    )
