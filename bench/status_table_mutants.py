"""Mutants of the status table itself, which mutmut does not make (it mutates function bodies).

Run from the repository root: ``.venv/bin/python bench/status_table_mutants.py``. Each row of
``portal.status.STATUSES`` is changed one field at a time (label, tone, transitional, each
audience's explanation and next step) and the unit tests of tests/unit/test_status.py that read
the table are run in-process; a mutant is killed when one of them fails. The only survivors
expected are the empty placeholders a hook always overwrites (failed for staff, unknown).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "codesquare.settings")
import tests.testenv  # noqa: E402,F401  (the test environment, before the settings load)


def main() -> None:
    import django

    django.setup()
    from django.conf import settings

    import portal.status as status
    import tests.unit.test_status as t

    settings.STATUS_BUILD_SLOW_SECONDS = 300  # the value the unit tests assume

    def some_test_fails() -> bool:
        try:
            for words_row in t.WORDS:
                t.test_each_status_reads_exactly_these_words(*words_row)
            for table_row in t.TABLE:
                t.test_each_combination_decodes_to_one_status(*table_row)
            t.test_only_the_blue_states_are_transitional()
            t.test_keys_are_listed_in_rule_order_with_their_labels()
        except AssertionError:
            return True
        return False

    def install(key: status.StatusKey, spec: status.StatusSpec) -> None:
        # The derived lists are built at import; rebuild them in place as the module does.
        status.STATUSES[key] = spec
        status.STATUS_KEYS[:] = [(k, s.label) for k, s in status.STATUSES.items()]
        status.TRANSITIONAL_KEYS = frozenset(
            k for k, s in status.STATUSES.items() if s.transitional
        )
        t.TRANSITIONAL_KEYS = status.TRANSITIONAL_KEYS

    if some_test_fails():
        sys.exit("the unit tests fail on the unchanged table")
    survivors: list[str] = []
    total = 0
    for key, spec in list(status.STATUSES.items()):
        other_tone = status.Tone.RED if spec.tone is status.Tone.GREY else status.Tone.GREY
        variants: list[tuple[str, Any]] = [
            ("label", dataclasses.replace(spec, label="XX")),
            ("tone", dataclasses.replace(spec, tone=other_tone)),
            ("transitional", dataclasses.replace(spec, transitional=not spec.transitional)),
        ]
        if spec.soldier is None:
            variants.append(
                ("soldier words", dataclasses.replace(spec, soldier=status.Words("XX")))
            )
        for audience in ("staff", "soldier"):
            words = getattr(spec, audience)
            for field in ("explanation", "next_step") if words is not None else ():
                changed = dataclasses.replace(words, **{field: "XX"})
                variants.append(
                    (f"{audience}.{field}", dataclasses.replace(spec, **{audience: changed}))
                )
        for name, variant in variants:
            total += 1
            install(key, variant)
            if not some_test_fails():
                survivors.append(f"{key}: {name}")
        install(key, spec)
    print(f"table mutants: {total - len(survivors)}/{total} killed")
    for survivor in survivors:
        print(f"  survived: {survivor}")


if __name__ == "__main__":
    main()
