"""The look-alike table is derived from Unicode's confusables.txt, keeping only what the deny-list can use."""

from __future__ import annotations

from jobs.confusables_build import render

EXCERPT = """\ufeff# confusables.txt
# Date: 2020-02-13, 01:38:49 GMT
# © 2020 Unicode®, Inc.
# Version: 13.0.0
0430 ;\t0061 ;\tMA\t# ( а → a ) CYRILLIC SMALL LETTER A → LATIN SMALL LETTER A
006D ;\t0072 006E ;\tMA\t# ( m → rn ) LATIN SMALL LETTER M → LATIN SMALL LETTER R, LATIN SMALL LETTER N
FF41 ;\t0061 ;\tMA\t# ( ａ → a ) FULLWIDTH LATIN SMALL LETTER A → LATIN SMALL LETTER A
0660 ;\t002E ;\tMA\t#* ( ٠ → . ) ARABIC-INDIC DIGIT ZERO → FULL STOP
00E6 ;\t0061 0065 ;\tMA\t# ( æ → ae ) LATIN SMALL LETTER AE → LATIN SMALL LETTER A, LATIN SMALL LETTER E
"""


def test_table_keeps_only_look_alikes_the_folding_leaves() -> None:
    """ASCII pairs, forms NFKC already folds and letters that would become punctuation are left out."""
    namespace: dict[str, object] = {}
    exec(compile(render(EXCERPT), "confusables.py", "exec"), namespace)
    assert namespace["UNICODE_VERSION"] == "13.0.0"
    assert str(namespace["PAIRS"]).split() == ["E6:61,65", "430:61"]
    assert "© 2020 Unicode®, Inc." in str(namespace["__doc__"])
