"""Readers for legacy AlexNet weight formats; they import no Keras."""
