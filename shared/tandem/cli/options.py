"""Command-line flags generated from the settings classes, so each flag, its
environment variable and its help text come from one definition."""

from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def _base_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    if origin is typing.Annotated:
        return _base_type(typing.get_args(annotation)[0])
    return annotation


def add_settings_arguments(
    parser: argparse.ArgumentParser, model: type[BaseSettings], *, skip: tuple[str, ...] = ()
) -> None:
    prefix = str(model.model_config.get("env_prefix", ""))
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        flag = str(extra.get("flag") or "--" + name.replace("_", "-"))
        env = (prefix + name).upper()
        default = field.get_default(call_default_factory=True)
        shown = (
            ",".join(default)
            if isinstance(default, list)
            else ("unset" if default is None else default)
        )
        help_text = f"{field.description} [env {env}; default: {shown}]".replace("%", "%%")
        base = _base_type(field.annotation)
        if base is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif typing.get_origin(base) is list:
            parser.add_argument(flag, dest=name, action="append", default=None, help=help_text)
        else:
            metavar = "PATH" if base is Path else ("N" if base in (int, float) else "VALUE")
            parser.add_argument(flag, dest=name, default=None, metavar=metavar, help=help_text)


def settings_from_args(
    model: type[SettingsT], args: argparse.Namespace, env_file: str | None
) -> SettingsT:
    overrides = {
        name: getattr(args, name)
        for name in model.model_fields
        if getattr(args, name, None) is not None
    }
    try:
        return model(_env_file=env_file, **overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SystemExit(f"tandem: invalid settings: {problems}") from None
