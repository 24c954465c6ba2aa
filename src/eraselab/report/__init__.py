"""Reports: reports/metrics.json (every number of the grid), metrics/summary.json (the headline numbers,
tracked in git), report.md, a self-contained index.html, plots.

Submodules are imported where used (build, ablation, cost, censor): importing one never loads the others.
"""
