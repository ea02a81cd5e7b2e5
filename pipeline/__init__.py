"""Reproducible data-and-training pipeline for the recurrent networks of chapter 15."""
