"""The char LSTM as an MLflow model from code: MLflow runs this file to build the model
when it loads it (pipeline/charlm/serving.py logs it by path)."""
import mlflow.models

from pipeline.charlm.serving import CharLMModel

mlflow.models.set_model(CharLMModel())
