"""Dataset figures: images per class and split."""

import pandas as pd
import plotly.graph_objects as go

from tltools.data.split import SPLITS


def class_counts_figure(report: dict) -> go.Figure:
    """Return a stacked bar chart of images per class and split from a dataset report.

    Args:
        report: :meth:`tltools.data.Dataset.report` output.
    """
    figure = go.Figure()
    for split, counts in report["splits"].items():
        figure.add_bar(name=split, x=list(counts), y=list(counts.values()))
    figure.update_layout(
        barmode="stack",
        xaxis_title="class",
        xaxis_type="category",  # class names such as "0".."9" are names, not numbers
        yaxis_title="images",
        legend_title="split",
        margin=dict(l=10, r=10, t=30, b=10),
        height=320,
    )
    return figure


def split_counts_table(report: dict) -> pd.DataFrame:
    """Return images per class and split as a table: one row per class, a column per split present, and the total.

    Args:
        report: :meth:`tltools.data.Dataset.report` output.
    """
    present = [split for split in SPLITS if split in report["splits"]]
    rows = [{"class": name, **{split: report["splits"][split].get(name, 0) for split in present},
             "total": total} for name, total in report["classes"].items()]
    return pd.DataFrame(rows, columns=["class", *present, "total"])
