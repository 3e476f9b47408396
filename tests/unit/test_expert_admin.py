"""The expert directory page's form (app/panel/expert_admin.py): text fields into the entry the
directory checks, and the field a refusal is about."""

from __future__ import annotations

import pytest

from app.domain.experts import Directory, ExpertGroup, added
from app.panel.expert_admin import FormProblem, directory_page, entry_of, field_of

DIRECTORY = Directory(groups=(ExpertGroup("mortgage"),))


def test_the_form_reads_into_the_entry_the_api_takes() -> None:
    entry = entry_of(
        {
            "id": " liu ",
            "name": "Liu Yang",
            "number": "13912340002",
            "email": "",
            "groups": "mortgage， ",
            "expertise": "mortgage 8, car loans:5",
            "languages": "zh, en",
            "max_calls": "2",
        }
    )
    assert entry == {
        "id": "liu",
        "name": "Liu Yang",
        "number": "13912340002",
        "groups": ["mortgage"],
        "languages": ["zh", "en"],
        "expertise": {"mortgage": 8, "car loans": 5},
        "max_calls": 2,
    }
    e = added(DIRECTORY, entry)
    assert (e.id, e.groups, e.max_calls) == ("liu", ("mortgage",), 2)


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"expertise": "mortgage"}, "expertise"),
        ({"expertise": "8"}, "expertise"),
        ({"max_calls": "two"}, "max_calls"),
    ],
)
def test_what_cannot_be_read_names_its_field(form: dict[str, str], field: str) -> None:
    with pytest.raises(FormProblem) as err:
        entry_of({"id": "x", "name": "X", "number": "123", **form})
    assert err.value.field == field


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"id": "Liu!", "name": "L", "number": "139"}, "id"),
        ({"id": "liu", "name": "", "number": "139"}, "name"),
        ({"id": "liu", "name": "L", "number": "call me"}, "number"),
        ({"id": "liu", "name": "L", "number": "139", "email": "nope"}, "email"),
        ({"id": "liu", "name": "L", "number": "139", "groups": "nope"}, "groups"),
        ({"id": "liu", "name": "L", "number": "139", "expertise": "x 11"}, "expertise"),
        ({"id": "liu", "name": "L", "number": "139", "max_calls": "11"}, "max_calls"),
    ],
)
def test_a_refusal_of_the_directory_is_shown_beside_its_field(form: dict[str, str], field: str) -> None:
    with pytest.raises(ValueError) as err:
        added(DIRECTORY, entry_of(form))
    assert field_of(str(err.value)) == field


def test_the_page_keeps_what_was_typed_and_escapes_it() -> None:
    page = directory_page(
        "zh",
        "csrf",
        "someone",
        [],
        frozenset(),
        ["mortgage"],
        form={"name": '<b>"Liu"</b>'},
        errors={"number": "number: a phone number"},
    )
    assert "专家名录" in page and "&lt;b&gt;&quot;Liu&quot;&lt;/b&gt;" in page and "<b>" not in page
    assert 'id="error-number"' in page and 'aria-invalid="true"' in page
