"""generate: --max-new-tokens is bounded; a prompt the tokenizer makes no tokens of says so;
eval: an --eval-tokens below one window says so."""

from types import SimpleNamespace

from tests.reliability.helpers import one_line_error


def test_max_new_tokens_is_bounded(tmp_path, capsys):
    argv = ["generate", str(tmp_path), "--max-new-tokens", "99999999999999999999999"]
    assert one_line_error(capsys, argv) == (
        "error: --max-new-tokens must be at most 1000000, got 99999999999999999999999 "
        "(a bound against a typo that would run for days; run generate again for more)\n"
    )


def test_a_prompt_without_tokens_names_the_tokenizer(tmp_path, capsys, monkeypatch):
    from tokenizers import Tokenizer, models

    import scalinglab.train.evaluate as evaluate

    Tokenizer(models.BPE(vocab={"a": 0, "b": 1}, merges=[])).save(str(tmp_path / "tokenizer.json"))
    cfg = SimpleNamespace(train=SimpleNamespace(data=str(tmp_path)))
    monkeypatch.setattr(evaluate, "load_trained", lambda run, device: (None, cfg, 0))
    assert one_line_error(capsys, ["generate", str(tmp_path), "--device", "cpu"]) == (
        "error: --prompt '\\n' makes no tokens: the run's bpe tokenizer has none for its "
        "characters; the default --prompt is a newline; give a --prompt of text it knows\n"
    )


def test_eval_tokens_below_one_window(tmp_path, capsys, monkeypatch):
    import scalinglab.train.evaluate as evaluate

    cfg = SimpleNamespace(model=SimpleNamespace(block_size=32))
    monkeypatch.setattr(evaluate, "load_trained", lambda run, device: (None, cfg, 0))
    argv = ["eval", str(tmp_path), "--eval-tokens", "1", "--device", "cpu"]
    assert one_line_error(capsys, argv) == (
        "error: --eval-tokens 1 is less than one window of the run's block_size 32; "
        "give at least 32, or 0 for the whole split\n"
    )
