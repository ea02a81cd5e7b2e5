"""A model card on every registered model version: what the model is, the data it was
trained on (by digest), the recipe, its test figures beside the baseline's, what it is
for and where it fails (each family's serving module says those). Written by the
evaluate stages, which know the test figures, as the version's description and tags and
as `model_card.md` in the training run."""
from __future__ import annotations

from typing import Any

import mlflow


def _recipe(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()) if not isinstance(v, dict))


def card_markdown(title: str, what: str, data: str, recipe: dict[str, Any],
                  results: list[tuple[str, str]], use: str, limits: list[str]) -> str:
    lines = [f"# {title}", "", what, "", "## Data", "", data, "", "## Recipe", "",
             f"`{_recipe(recipe)}`", "", "## Results", "", "| figure | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in results]
    lines += ["", "## Intended use", "", use, "", "## Limits", ""]
    lines += [f"- {limit}" for limit in limits]
    return "\n".join(lines) + "\n"


def attach_card(model_name: str, run: mlflow.ActiveRun, card: str,
                tags: dict[str, str]) -> str | None:
    """The card as the description and tags of the version registered from `run`, and as
    an artifact of the run. Returns that version (None if the run registered none)."""
    mlflow.log_text(card, "model_card.md")
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(
        f"name = '{model_name}' and run_id = '{run.info.run_id}'")
    if not versions:
        return None
    version = versions[0].version
    client.update_model_version(model_name, version, description=card)
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    return version
