"""Monitoring a scored book (docs/monitoring.md): the reference profile, drift, data quality,
label-free performance estimates, realised backtests and the ok / warn / retrain verdict. Pure:
DataFrames, plain JSON-ready dicts and typed settings in, new objects out."""
