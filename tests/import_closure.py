"""The project modules a stage runs, derived from the code: the transitive closure of
`import` statements (at module level and inside functions) from the stage's module."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "pipeline"


def module_file(name: str) -> Path | None:
    """pipeline.x.y -> pipeline/x/y.py (or its __init__.py); None outside the project."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute names of everything `path` imports (relative imports resolved; for
    `from X import a`, both X and X.a, since a may be a submodule). `top_level_only`:
    only what importing the module runs, not the imports inside its functions."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names)
    return names


def closure(module: str) -> set[str]:
    """Repository-relative paths of every project file that importing `module` runs,
    its parent packages' __init__.py included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a, a.b, a.b.c
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imported_modules(path))
    return {p.relative_to(ROOT).as_posix() for p in seen}


def stage_module(cmd: str) -> str:
    """The module a dvc.yaml command runs: `python -m pipeline.stages.x` -> that name."""
    words = cmd.split()
    if words[:2] != ["python", "-m"] or len(words) < 3:
        raise ValueError(f"stage command {cmd!r} is not `python -m <module> ...`")
    return words[2]


def third_party_at_import(module: str) -> set[str]:
    """Top-level names of the non-project, non-standard-library packages that importing
    `module` imports (following project modules, not function bodies)."""
    import sys
    seen: set[Path] = set()
    found: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None:
            top = name.split(".")[0]
            if top and top != PACKAGE and top not in sys.stdlib_module_names:
                found.add(top)
            continue
        if path not in seen:
            seen.add(path)
            todo.extend(imported_modules(path, top_level_only=True))
    return found


if __name__ == "__main__":
    # `python -m tests.import_closure`: each stage's code dependencies, for dvc.yaml.
    import yaml
    for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items():
        print(f"{name}:")
        for path in sorted(closure(stage_module(stage["cmd"]))):
            print(f"      - {path}")
