"""The dataset as a map: a 2-D projection of the features, drawn as a Plotly scatter coloured by class.

PCA down to at most 50 dimensions, then scikit-learn's t-SNE (seeded, so the same
features give the same map); for fewer than 4 images, PCA alone. Images with a
finding are drawn larger with a dark outline and their finding in the hover text.
"""

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

PCA_DIMENSIONS = 50
# t-SNE iterations, the first 250 of them early exaggeration: half scikit-learn's default 1000, which took 83 s
# against 44 s on flowers12 with the two cores loaded (load average 9); the clusters are formed
# well before, and the map is only for looking.
TSNE_ITERATIONS = 500


def project(features: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """Return (images, 2) map coordinates of L2-normalised ``features``."""
    count = len(features)
    reduced = PCA(n_components=min(PCA_DIMENSIONS, count, features.shape[1]), random_state=seed).fit_transform(features)
    if count < 4:
        return np.pad(reduced[:, :2], ((0, 0), (0, max(0, 2 - reduced.shape[1]))))
    perplexity = float(min(30.0, (count - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", max_iter=TSNE_ITERATIONS,
                random_state=seed).fit_transform(reduced)


def findings_by_image(report) -> dict[int, str]:
    """Return ``{image index: what was found}`` for every image with a finding in a :class:`HealthReport`."""
    classes, found = report.dataset.classes, {}
    for issue in report.label_issues:
        found.setdefault(issue.index, []).append(f"likely {classes[issue.suggested]!r}, not {classes[issue.given]!r}")
    for group in report.duplicates:
        what = "label conflict" if group.label_conflict else "leakage" if group.leakage else f"{group.kind} duplicate"
        for index in group.indices:
            found.setdefault(index, []).append(what)
    for item in report.outliers:
        found.setdefault(item.index, []).append("outlier")
    return {index: "; ".join(parts) for index, parts in found.items()}


def selected_image(event) -> int | None:
    """Return the image index of the point clicked on the map, or None.

    Args:
        event: What ``st.plotly_chart(map_figure(...), on_select="rerun")`` returned: a mapping with
            ``selection.points``, each point carrying its ``customdata`` (the image index, alone or in a
            list); None, or no point selected, gives None. With several points (a box), the first counts.
    """
    points = ((event or {}).get("selection") or {}).get("points") or []
    for point in points:
        value = point.get("customdata")
        value = value[0] if isinstance(value, (list, tuple)) and value else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    return None


def map_figure(report, coordinates: np.ndarray) -> go.Figure:
    """Return the map: one trace per class (legend toggles it), images with findings outlined and larger.

    Each point's ``customdata`` is its image index in ``report.table``, so a selection names images.
    """
    table = report.table
    found = findings_by_image(report)
    figure = go.Figure()
    palette = qualitative.Plotly if len(report.dataset.classes) <= 10 else qualitative.Dark24  # no colour twice
    for number, name in enumerate(report.dataset.classes):
        rows = np.flatnonzero(table["label"].to_numpy() == name)
        flagged = np.array([row in found for row in rows], dtype=bool)
        hover = [f"{table['relpath'].iat[row]}<br>{name} ({table['split'].iat[row]})"
                 + (f"<br><b>{found[row]}</b>" if row in found else "") for row in rows]
        figure.add_trace(go.Scattergl(
            x=coordinates[rows, 0], y=coordinates[rows, 1], mode="markers", name=name,
            customdata=rows, hovertext=hover, hoverinfo="text",
            marker={"color": palette[number % len(palette)], "size": np.where(flagged, 13, 7),
                    "line": {"width": np.where(flagged, 2, 0), "color": "#111"},
                    "symbol": np.where(flagged, "diamond", "circle")}))
    figure.update_layout(height=560, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend_title_text="class",
                         xaxis={"visible": False}, yaxis={"visible": False}, dragmode="pan")
    return figure
