"""The code a DVC stage depends on, derived from the code: the transitive closure of
`import` statements (at module level and inside functions) from the stage's module.

`python -m pipeline deps` prints each stage's code dependencies for dvc.yaml, a folder
standing for all its files where the stage imports every one of them;
tests/test_dvc_graph.py fails when dvc.yaml's lists differ from them.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import yaml

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


def code_files_named(path: Path) -> set[Path]:
    """Python files beside `path` that it names in a string rather than imports: the
    file an MLflow model is logged from (`with_name("mlflow_model.py")`) is code the
    logged model runs, so it is code the stage depends on."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    named = {node.value for node in ast.walk(tree)
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and node.value.endswith(".py") and "/" not in node.value}
    return {path.with_name(name) for name in named if path.with_name(name).is_file()}


def closure(module: str) -> set[str]:
    """Repository-relative paths of every project file that importing `module` runs,
    its parent packages' __init__.py included, and the code files they name."""
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
                seen |= code_files_named(path)
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


def package_files(folder: str) -> set[str]:
    """The Python files under a repository folder, as repository-relative paths."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*.py")}


def collapse(files: set[str]) -> list[str]:
    """`files` with every folder whose Python files are all in it listed as the folder
    (the outermost such folder, but never the package itself)."""
    folders = sorted({str(Path(f).parent) for f in files} - {PACKAGE}, key=len)
    out, covered = [], set()
    for folder in folders:
        if any(folder.startswith(c + "/") for c in covered):
            continue
        if package_files(folder) <= files:
            covered.add(folder)
    for f in sorted(files):
        if not any(f.startswith(c + "/") for c in covered):
            out.append(f)
    return sorted(out + sorted(covered))


def expand(deps: list[str]) -> set[str]:
    """dvc.yaml's code deps as files: a folder stands for its Python files."""
    files: set[str] = set()
    for dep in deps:
        files |= package_files(dep) if (ROOT / dep).is_dir() else {dep}
    return files


def stage_code_deps(dvc_yaml: Path = ROOT / "dvc.yaml") -> dict[str, list[str]]:
    """What each stage of dvc.yaml should list as its code dependencies."""
    stages = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8"))["stages"]
    return {name: collapse(closure(stage_module(stage["cmd"]))) for name, stage in stages.items()}


def print_code_deps(out=sys.stdout) -> None:
    for name, deps in stage_code_deps().items():
        print(f"{name}:", file=out)
        for path in deps:
            print(f"      - {path}", file=out)
