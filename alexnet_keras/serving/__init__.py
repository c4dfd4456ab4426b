"""Serving: the SavedModel graph (`graph`), `export`, and LiteRT (`lite`)."""
