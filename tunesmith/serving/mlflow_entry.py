"""The file MLflow loads a Tunesmith model from (models from code)."""

from mlflow.models import set_model

from tunesmith.serving.mlflow_model import TunesmithModel

set_model(TunesmithModel())
