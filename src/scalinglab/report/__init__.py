"""The report of a study or sweep folder: figures (matplotlib), report.html, summary.json.

from scalinglab.report import build_report
summary = build_report("runs/study")     # writes report.html, summary.json, *.png
"""

from scalinglab.report.build import build_report

__all__ = ["build_report"]
