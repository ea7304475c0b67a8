"""Inference on trained models: `tunesmith predict`, with several adapters on one base model."""
