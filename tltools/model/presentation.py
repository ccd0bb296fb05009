"""What the Model page shows, in words and tables a person reads: backbones, layers, what fine-tuning unfreezes.

Nothing here builds or changes a model: the functions take the registry's
specs and the tables of :mod:`tltools.model.freezing` and return readable
tables and sentences (no internal column names, no ``None``, numbers with
separators).
"""

import pandas as pd

from tltools.backbones.registry import BackboneSpec

BATCHNORM = "BatchNormalization"


def backbone_table(specs: list[BackboneSpec], *, recommended: str) -> pd.DataFrame:
    """Return one readable row per backbone.

    Args:
        specs: The registry's backbones, in the order to show.
        recommended: The name to mark with ★.

    Returns:
        Columns ``backbone``, an unnamed one (★ for the recommended backbone), ``parameters`` (e.g.
        ``4.7 M``), ``input`` (``224 px``), ``ImageNet top-1`` (``75.1 %`` or ``–`` when unknown) and
        ``weights`` (ImageNet weights: ``offline`` when they come with tltools, else ``download``).
    """
    return pd.DataFrame([{
        "backbone": spec.name,
        "": "★" if spec.name == recommended else "",
        "parameters": f"{spec.params / 1e6:,.1f} M",
        "input": f"{spec.default_size} px",
        "ImageNet top-1": "–" if spec.top1 is None else f"{spec.top1:.1f} %",
        "weights": "offline" if spec.offline else "download",
    } for spec in specs])


def readable_layers(table: pd.DataFrame) -> pd.DataFrame:
    """Return :func:`tltools.model.freezing.layer_table` (or a preview of it) with readable columns and values.

    Returns:
        Columns ``#``, ``layer``, ``type``, ``block`` (``–`` outside blocks), ``parameters``
        (with thousands separators), ``trains in phase 2`` and ``from N`` (the
        smallest "top N" that unfreezes the layer; ``–`` for layers without weights).
    """
    return pd.DataFrame({
        "#": table["index"],
        "layer": table["name"],
        "type": table["type"],
        "block": table["block"].fillna("–").astype(str),
        "parameters": [f"{int(count):,}" for count in table["params"]],
        "trains in phase 2": table["trainable"].astype(bool),
        "from N": ["–" if pd.isna(rank) else str(int(rank)) for rank in table["top_n"]],
    })


def _in_range(table: pd.DataFrame, setting: str) -> pd.Series:
    """Which weighted layers the unfreeze ``setting`` reaches (whether or not they then train)."""
    weighted = table["top_n"].notna()
    text = str(setting).strip().lower()
    if text == "all":
        return weighted
    if text.isdigit():
        return weighted & (table["top_n"].fillna(0) <= int(text)) & (table["top_n"].fillna(0) > 0)
    if text.startswith("block:"):
        block = text.split(":", 1)[1]
        starts = table.index[table["block"].astype(str) == block]
        if len(starts):
            return weighted & (table["index"] >= table.loc[starts[0], "index"])
    return weighted & False


def unfreeze_summary(table: pd.DataFrame, setting: str, *, train_batchnorm: bool) -> str:
    """Say in one or two sentences what an unfreeze setting trains, naming the BatchNorm layers it keeps frozen.

    Args:
        table: :func:`tltools.model.freezing.preview_unfreeze`'s table for ``setting``.
        setting: The unfreeze setting (``all``, ``none``, ``N``, ``block:X``).
        train_batchnorm: Whether BatchNorm layers train too.
    """
    reached = table[_in_range(table, setting)]
    if reached.empty:
        return "Phase 2 unfreezes no base layer."
    batchnorm = reached["type"].str.contains(BATCHNORM)
    trained = int(reached["trainable"].sum())
    what = f"Phase 2 unfreezes {len(reached)} weighted base layer{'s' if len(reached) != 1 else ''}"
    if train_batchnorm or not batchnorm.any():
        return f"{what}; all {trained} train."
    return (f"{what}: {trained} train, and the other {int(batchnorm.sum())} are BatchNorm layers, kept frozen on "
            "purpose: frozen BatchNorm keeps ImageNet's statistics, which a small dataset's batches would "
            "otherwise disturb.")


def equivalent_unfreeze(table: pd.DataFrame, setting: str, *, to_blocks: bool) -> str:
    """Return the unfreeze setting of the other kind (top N layers ↔ a block) that comes closest to ``setting``.

    Args:
        table: :func:`tltools.model.freezing.layer_table` of the model.
        setting: The current setting.
        to_blocks: True to express it as ``block:X`` (the block of the lowest layer it unfreezes,
            so at least as much trains), False as a number of top layers (``all`` when that is every one).

    Returns:
        The converted setting; ``setting`` itself when it already is of the wanted kind or the model has no blocks.
    """
    blocks = [block for block in dict.fromkeys(table["block"].dropna().astype(str))]
    text = str(setting).strip().lower()
    largest = int(table["top_n"].max()) if table["top_n"].notna().any() else 0
    if to_blocks:
        if not blocks or text.startswith("block:"):
            return setting
        n = largest if text == "all" else int(text) if text.isdigit() else 0
        if n <= 0:
            return f"block:{blocks[-1]}"
        lowest = table[table["top_n"] == n].iloc[0]
        if pd.notna(lowest["block"]):
            return f"block:{lowest['block']}"
        in_blocks = table[table["block"].notna()]
        return f"block:{blocks[-1] if lowest['index'] > in_blocks['index'].max() else blocks[0]}"
    if not text.startswith("block:"):
        return setting
    reached = table[_in_range(table, text)]
    n = int(reached["top_n"].max()) if not reached.empty else 0
    return "all" if n == largest else str(n)
