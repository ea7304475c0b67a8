"""MLflow tracking at the stage boundaries (no stage logic here)."""
