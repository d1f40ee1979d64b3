"""Report: the study's tables -> summary.md / summary.html, headline.json and figures (PNG + SVG).

In the style of rliable, numbers are computed apart from drawing and writing them: tables.py and
compare.py compute DataFrames, headline.py gathers every number of the summary once, claims.py judges
the paper's search claims on them, figures.py draws Figures, render.py writes markdown and HTML.
Accuracies are fractions in tables and percentages in figures and markdown; CIs are 95% bootstraps.
"""
from pavflow.report.figures import (plot_accuracy_vs_budget, plot_accuracy_vs_tokens, plot_alpha, plot_bon_diagnosis,
                                    plot_calibration, plot_data_scaling, plot_headline, plot_oracle_k,
                                    plot_prover_k, plot_rl_curves, plot_success_histogram, plot_train_logs,
                                    plot_verifier_quality, save)
from pavflow.report.headline import headline
from pavflow.report.render import landing_rst, write_summary
from pavflow.report.tables import StudyTables, prover_rows, rl_final, rl_seed_bands, search_curves
