"""`tunesmith init`: a starter project (config with every key, prefect.yaml for the installed flows, README).

The config is written from the schema itself, each key with its default and the schema's own comment, so the
starter can never list a key the schema does not accept or miss one it added.
"""

from __future__ import annotations

import ast
import inspect
import io
import json
import tokenize
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tunesmith.config import schema
from tunesmith.config.schema import RunConfig, TrainingConfig
from tunesmith.formats import get_format
from tunesmith.resources import bundled_data, package_file


def schema_comments() -> dict[tuple[str, str], str]:
    """(class name, field name) -> the comments beside or above that field, in schema.py and the method modules
    (which declare training's per-method sections)."""
    modules = {schema, *(inspect.getmodule(m) for m in TrainingConfig.section_models().values())}
    found: dict[tuple[str, str], str] = {}
    for module in modules:
        found |= _field_comments(inspect.getsource(module))
    return found


def _field_comments(source: str) -> dict[tuple[str, str], str]:
    comments: dict[int, str] = {
        token.start[0]: token.string.lstrip("# ").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }
    lines = source.splitlines()
    found: dict[tuple[str, str], str] = {}
    for node in ast.parse(source).body:
        if not isinstance(node, ast.ClassDef):
            continue
        for stmt in node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            above, row = [], stmt.lineno - 1
            while row >= 1 and lines[row - 1].strip().startswith("#"):
                above.insert(0, comments[row])
                row -= 1
            beside = [comments[n] for n in range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1) if n in comments]
            text = " ".join(part for part in above + beside if part and part != "fmt: skip")
            if text:
                found[(node.name, stmt.target.id)] = text
    return found


def _yaml_value(value: Any) -> str:
    """One-line YAML (flow style) for a default; paths inside the installed package are shown by name."""
    bundled = str(bundled_data())

    def plain(v: Any) -> Any:
        if isinstance(v, BaseModel):
            return plain(v.model_dump(mode="json"))
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            v = str(v)
        if isinstance(v, str) and v.startswith(bundled):
            return "<bundled>/" + Path(v).name
        return v

    value = plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)  # JSON is valid flow-style YAML


def _section_lines(model: type[BaseModel], chosen: dict[str, Any], indent: int, comments) -> list[str]:
    """Every field of `model`: chosen values as live YAML, defaults commented out with their explanation."""
    lines: list[str] = []
    pad = "  " * indent
    fields = [(name, info.annotation, info) for name, info in model.model_fields.items()]
    if hasattr(model, "section_models"):  # training's per-method sections, declared by the methods
        fields += [(name, section, None) for name, section in model.section_models().items()]
    for name, annotation, info in fields:
        note = comments.get((model.__name__, name))
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if nested:
            inner = chosen.get(name, {})
            live = bool(inner)
            if note:
                lines.append(f"{pad}# {note}")
            lines.append(f"{pad}{'' if live else '# '}{name}:")
            body = _section_lines(annotation, inner, indent + 1, comments)
            lines += body if live else [_comment_out(line, pad) for line in body]
            continue
        if name in chosen:
            line = f"{pad}{name}: {_yaml_value(chosen[name])}"
        else:
            default = info.get_default(call_default_factory=True) if not info.is_required() else "<required>"
            line = f"{pad}# {name}: {_yaml_value(default)}"
        lines.append(line + (f"  # {note}" if note else ""))
    return lines


def _comment_out(line: str, pad: str) -> str:
    return line if line.lstrip().startswith("#") else f"{pad}# {line[len(pad) :]}"


def starter_config(name: str, data_format: str, data_path: str = "data/train.jsonl") -> str:
    """The YAML text of a starter config: the keys a new project must set live, every other key commented."""
    task_format = get_format(data_format)
    data: dict[str, Any] = {"path": data_path, "format": data_format}
    if task_format.has_labels:
        data["labels"] = list(task_format.starter_labels)
    chosen: dict[str, Any] = {"name": name, "model": RunConfig.model_fields["model"].default, "data": data}
    example = json.dumps(task_format.starter_row, ensure_ascii=False)
    header = [
        f"# Tunesmith run config for {name} ({data_format} data). Every key is listed: the live ones are what",
        "# this project sets; uncomment any other to change its default. Validate with: tunesmith check config.yaml",
        f"# One row of {data_path} looks like: {example}",
    ]
    if task_format.has_labels:
        header.append("# data.labels: replace with your label set (every label in the data must be listed).")
    return "\n".join(header + _section_lines(RunConfig, chosen, 0, schema_comments())) + "\n"


def init_project(folder: Path, data_format: str = "classification", name: str | None = None) -> list[Path]:
    """Write config.yaml, prefect.yaml and README.md into a new (or empty) folder; returns what was written."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: init writes into a new or empty folder")
    name = name or folder.resolve().name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data").mkdir(exist_ok=True)
    values = {"name": name, "format": data_format, "data_path": "data/train.jsonl",
              "project_dir": str(folder.resolve()), "prefect_version": version("prefect")}  # fmt: skip
    written = [folder / "config.yaml", folder / "prefect.yaml", folder / "README.md"]
    written[0].write_text(starter_config(name, data_format, values["data_path"]), encoding="utf-8")
    for path in written[1:]:
        template = package_file("tunesmith.starter", f"templates/{path.name}").read_text(encoding="utf-8")
        path.write_text(template.format(**values), encoding="utf-8")
    return written
