"""Plotly figures the app shows: plain functions of tltools data, no Streamlit here.

One module per page topic: :mod:`~tltools.charts.dataset`, :mod:`~tltools.charts.training`,
:mod:`~tltools.charts.evaluation`.
"""
