"""The sentiment classifier as an MLflow model from code: MLflow runs this file to
build the model when it loads it (pipeline/sentiment/serving.py logs it by path)."""
import mlflow.models

from pipeline.sentiment.serving import SentimentModel

mlflow.models.set_model(SentimentModel())
