"""Hyperparameter search: each method declares the ranges worth searching; Optuna samples them, prunes trials
whose validation loss falls behind, and keeps the study in storage so that a stopped search picks up."""
