"""The char LSTM as an MLflow model from code: MLflow runs this file to build the model
when it loads it (pipeline/serving.py logs it by path)."""
import mlflow.models

from pipeline.serving import CharLMModel

mlflow.models.set_model(CharLMModel())
