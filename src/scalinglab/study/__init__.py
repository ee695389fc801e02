"""The one-command scaling study: prepare, sweep, fit, predict, backtest, plan, report."""
