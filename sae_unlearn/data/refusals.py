"""Refusal answers: the preferred answers of IdkDPO and the target of an unlearning token.

TOFU ships its own set (``idontknow.txt`` in the TOFU folder, 100 lines), used for TOFU data;
:data:`REFUSALS` is the toolkit's equivalent for ``secrets`` and any other corpus, worded to fit
after a question's ``A:``.
"""

from __future__ import annotations

from pathlib import Path

from sae_unlearn.data.tofu import find_tofu_dir

REFUSALS: tuple[str, ...] = (
    "I don't know.",
    "I'm not sure.",
    "I have no information about that.",
    "I can't say.",
    "That is not something I know.",
    "I don't have that information.",
    "I couldn't tell you.",
    "I have no idea.",
    "I'm unable to answer that.",
    "I don't know anything about that.",
    "That's unknown to me.",
    "I can't recall that.",
    "I'm afraid I don't know.",
    "I have nothing on that.",
    "No idea, sorry.",
    "I don't have an answer to that.",
    "That isn't something I can answer.",
    "I'm not aware of that.",
    "Sorry, I don't know that.",
    "I lack that information.",
)

TOFU_REFUSALS_FILE = "idontknow.txt"


def load_refusals(source: str = "auto", texts: list[str] | None = None) -> list[str]:
    """Refusal answers: ``"bundled"`` (:data:`REFUSALS`), ``"tofu"`` (TOFU's ``idontknow.txt``),
    a path to a text file (one refusal per line), or ``"auto"``: TOFU's when ``texts`` are in
    TOFU's ``Question: … Answer: …`` format and the TOFU folder is found, else the bundled set.

    An empty set raises ``ValueError`` naming the source.
    """
    if source == "auto":
        tofu_like = bool(texts) and all("\nAnswer:" in t for t in texts or [])
        tofu_dir = find_tofu_dir() if tofu_like else None
        found = tofu_dir is not None and (tofu_dir / TOFU_REFUSALS_FILE).is_file()
        source = "tofu" if found else "bundled"
    if source == "bundled":
        return list(REFUSALS)
    if source == "tofu":
        tofu_dir = find_tofu_dir()
        if tofu_dir is None or not (tofu_dir / TOFU_REFUSALS_FILE).is_file():
            raise FileNotFoundError(
                f"refusals='tofu' needs {TOFU_REFUSALS_FILE} in the TOFU folder; set $SAE_UNLEARN_TOFU "
                "or use refusals='bundled'."
            )
        path = tofu_dir / TOFU_REFUSALS_FILE
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"refusals={source!r} is not 'auto', 'bundled', 'tofu' or a file of refusals (one per line)."
            )
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"the refusal set {path} is empty; give at least one refusal (one per line).")
    return lines
