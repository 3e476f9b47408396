"""QA scoring forms: one YAML file per form in `recording.forms`, loaded and checked as a whole
(errors name the file, the line and the field)."""

from __future__ import annotations

from pathlib import Path

from app.config import Settings, _Reader, compose_file
from app.domain.evaluation import Form, FormError, check_form
from app.errors import ConfigError


def forms_dir(settings: Settings) -> Path | None:
    if settings.recording.forms is None:
        return None
    path = Path(settings.recording.forms)
    if not path.is_absolute():
        path = Path(settings.source).parent / path
    return path


def load_forms(settings: Settings) -> dict[str, Form]:
    directory = forms_dir(settings)
    if directory is None:
        return {}
    files = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    if not files:
        raise ConfigError(
            "no form files (*.yaml) here", file=str(directory), line=None, field_path="recording.forms"
        )
    forms: dict[str, Form] = {}
    for path in files:
        form = load_form(path)
        if form.name in forms:
            raise ConfigError(
                f"form {form.name} is also in {forms[form.name].source}",
                file=str(path),
                line=None,
                field_path="name",
            )
        forms[form.name] = form
    return forms


def load_form(path: Path) -> Form:
    file = str(path)
    node = compose_file(path)
    if node is None:
        raise ConfigError("empty form file", file=file, line=None, field_path="")
    reader = _Reader(file)
    form: Form = reader.read(Form, node, "")
    form = Form(form.name, form.title, form.sections, source=file)
    try:
        check_form(form)
    except FormError as exc:
        raise ConfigError(
            exc.message, file=file, line=reader.lines.get(exc.path), field_path=exc.path
        ) from exc
    return form
