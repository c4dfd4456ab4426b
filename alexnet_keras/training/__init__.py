"""Training: the driver (`run`), the loop (`trainer`), the typed config, setups and helpers."""
