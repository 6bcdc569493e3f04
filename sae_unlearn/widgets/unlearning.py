"""Widgets for SSPU stages 5-6: run and watch unlearning, compare answers, export, verify."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as widgets

from sae_unlearn.data.splits import QAPair, UnlearningSplit
from sae_unlearn.evaluation.knowledge import evaluate_knowledge, greedy_answers, states_target
from sae_unlearn.export import export_model
from sae_unlearn.models.loading import HookedModel
from sae_unlearn.pipeline import load_method
from sae_unlearn.unlearning import TrainConfig, UnlearningResult
from sae_unlearn.unlearning.registry import METHODS, method_label, settings_for
from sae_unlearn.viz import plot_unlearning_history
from sae_unlearn.widgets._base import FigurePanel, table_html


def method_option(name: str) -> str:
    """A method's entry in the menu: its label and one-line description."""
    desc = METHODS[name].description
    return f"{method_label(name)}: {desc}" if desc else method_label(name)


class UnlearningMonitor(widgets.VBox):
    """Pick any registered method and a step budget, press *Run*: live losses, and forget/retain
    accuracy every ``eval_every`` steps. The model is a fresh copy loaded from ``model_dir``; after
    the run it is in ``.model`` and the result in ``.result``. Every finished run's accuracy curve
    is kept (``.runs``, by method) and drawn dashed beside the next run's, so a method is compared
    with SSPU (or any other) on the same axes. A weight-free method (SAE clamping, DSG) has no
    steps: its accuracy is shown before (step 0) and with its intervention installed (step 1)."""

    def __init__(
        self,
        model_dir: str | Path,
        stage,
        forget_texts: Sequence[str],
        retain_texts: Sequence[str],
        split: UnlearningSplit,
        settings: dict | None = None,
        eval_every: int = 25,
        device: str = "auto",
    ):
        self.model_dir, self.stage, self.split, self.device = model_dir, stage, split, device
        self.forget_texts, self.retain_texts = list(forget_texts), list(retain_texts)
        self.settings = dict(settings or {})
        self.eval_every = max(1, eval_every)
        self.method = widgets.Dropdown(
            options=[(method_option(m), m) for m in METHODS],
            value="sspu",
            description="method",
            layout=widgets.Layout(width="520px"),
        )
        steps = self.settings.get("steps", TrainConfig.steps)
        self.steps = widgets.IntText(value=int(steps), description="steps")
        self.run_button = widgets.Button(description="Run", button_style="primary")
        self.status = widgets.HTML()
        self.panel = FigurePanel()
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self.model: HookedModel | None = None
        self.result: UnlearningResult | None = None
        self.runs: dict[str, list[dict]] = {}
        """Accuracy at the evaluation points of the last finished run of each method."""
        self.run_button.on_click(lambda _: self.run())
        super().__init__([widgets.HBox([self.method, self.steps, self.run_button]), self.status, self.panel])

    def _evaluate(self, step: int) -> None:
        assert self.model is not None  # set by run() before the first step
        row: dict[str, float] = {"step": step}
        for role, items in (("forget", self.split.forget), ("retain", self.split.retain)):
            row[f"{role}_accuracy"] = evaluate_knowledge(self.model, items).known_fraction
        self.evals.append(row)

    def _on_step(self, row: dict) -> None:
        self.history.append(row)
        step = row["step"] + 1
        if step % self.eval_every == 0:
            self._evaluate(step)
            self.panel.show(plot_unlearning_history(self.history, self.evals, self._others()))
        self.status.value = html.escape(
            f"{self.method.value}: step {step}/{self.steps.value}  forget loss {row['forget_loss']:.3g}  "
            f"retain loss {row['retain_loss']:.3g}"
        )

    def _others(self) -> dict[str, list[dict]]:
        """The other methods' finished runs, by label (for the comparison curves)."""
        return {method_label(m): e for m, e in self.runs.items() if m != self.method.value}

    def run(self) -> UnlearningResult:
        """Unlearn a fresh copy with the chosen method and budget (what *Run* does)."""
        if self.steps.value < 1:
            self.status.value = f"<b>steps must be at least 1 (got {self.steps.value})</b>"
            raise ValueError(f"steps={self.steps.value} must be >= 1.")
        self.history, self.evals = [], []
        settings = settings_for(self.method.value, {**self.settings, "steps": int(self.steps.value)})
        try:
            self.model, method = load_method(self.method.value, self.model_dir, self.stage, settings, self.device)
            self._evaluate(0)
            self.result = method.apply(
                self.model, self.forget_texts, self.retain_texts, progress=False, on_step=self._on_step
            )
        except ValueError as e:  # refused before any change (e.g. R²MU on a model that does not reason)
            self.status.value = f"<b>{html.escape(str(e))}</b>"
            raise
        if not method.changes_weights:  # an SAE intervention: no steps, before (0) and after (1)
            self._evaluate(1)
        elif not self.evals or self.evals[-1]["step"] != len(self.history):
            self._evaluate(len(self.history))
        self.runs[self.method.value] = list(self.evals)
        self.panel.show(plot_unlearning_history(self.history, self.evals, self._others()))
        last = self.evals[-1]
        note = f" — {self.result.stopped_early}" if self.result.stopped_early else ""
        self.status.value = html.escape(
            f"{self.method.value} done in {self.result.seconds:.1f}s: forget accuracy {last['forget_accuracy']:.3f}, "
            f"retain accuracy {last['retain_accuracy']:.3f}{note}"
        )
        return self.result


class BeforeAfter(widgets.VBox):
    """The same questions answered by the original and the unlearned model, side by side; any
    typed prompt can be added."""

    def __init__(
        self, original: HookedModel, unlearned: HookedModel, items: Sequence[QAPair], max_new_tokens: int = 12
    ):
        self.original, self.unlearned, self.max_new_tokens = original, unlearned, max_new_tokens
        self.items = list(items)
        self.choice = widgets.SelectMultiple(
            options=[(q.prompt, i) for i, q in enumerate(self.items)],
            value=tuple(range(min(4, len(self.items)))),
            rows=min(8, max(2, len(self.items))),
            description="questions",
            layout=widgets.Layout(width="560px"),
        )
        self.prompt = widgets.Text(placeholder="or type a prompt, e.g. Q: Where does … live? A:", description="prompt")
        self.ask = widgets.Button(description="Answer", button_style="primary")
        self.table = widgets.HTML()
        self.rows: list[dict] = []
        self.ask.on_click(lambda _: self.answer())
        super().__init__([self.choice, widgets.HBox([self.prompt, self.ask]), self.table])
        self.answer()

    def answer(self) -> list[dict]:
        """Answer the selected questions (and the typed prompt) with both models."""
        chosen = [self.items[i] for i in self.choice.value]
        prompts = [q.prompt for q in chosen] + ([self.prompt.value] if self.prompt.value.strip() else [])
        targets = [q.target for q in chosen] + [""] * (len(prompts) - len(chosen))
        if not prompts:
            self.table.value = "<i>select a question or type a prompt</i>"
            return []
        before = greedy_answers(self.original, prompts, self.max_new_tokens)
        after = greedy_answers(self.unlearned, prompts, self.max_new_tokens)
        self.rows = [
            {
                "prompt": p,
                "target": t,
                "original": b.strip(),
                "unlearned": a.strip(),
                "original_knows": states_target(b, t),
                "unlearned_knows": states_target(a, t),
            }
            for p, t, b, a in zip(prompts, targets, before, after, strict=True)
        ]
        self.table.value = table_html(
            ["prompt", "target", "original", "unlearned"],
            [[r["prompt"], r["target"], r["original"], r["unlearned"]] for r in self.rows],
        )
        return self.rows


class ExportPanel(widgets.VBox):
    """Write the unlearned model and its card as a Hugging Face folder; shows where and the reload check."""

    def __init__(self, model: HookedModel, card: dict, out_dir: str | Path = "unlearned_model"):
        self.model, self.card = model, dict(card)
        self.out = widgets.Text(value=str(out_dir), description="folder")
        self.overwrite = widgets.Checkbox(value=False, description="overwrite")
        self.button = widgets.Button(description="Export", button_style="success")
        self.status = widgets.HTML()
        self.written: dict | None = None
        self.button.on_click(lambda _: self.export())
        super().__init__([widgets.HBox([self.out, self.overwrite, self.button]), self.status])

    def export(self) -> dict | None:
        """Export (what *Export* does); errors are shown in the panel, never half-written."""
        try:
            self.written = export_model(self.model, self.out.value, self.card, overwrite=self.overwrite.value)
        except (FileExistsError, ValueError, OSError) as e:
            self.status.value = f"<b style='color:#b00'>not exported:</b> {html.escape(str(e))}"
            return None
        files = sorted(p.name for p in Path(self.written["path"]).iterdir())
        self.status.value = (
            f"exported to <code>{html.escape(self.written['path'])}</code> — max logit difference after reload "
            f"{self.written['max_logit_diff']:.1e}<br>files: {html.escape(', '.join(files))}"
        )
        return self.written


class VerificationView(widgets.VBox):
    """A verification report: verdict, the table of checks, and its figures one at a time."""

    def __init__(self, report):
        self.report = report
        self.figures = report.figures()
        self.figure = widgets.ToggleButtons(options=list(self.figures), value=next(iter(self.figures)))
        colour = {"removed": "#080", "suppressed": "#b60", "not forgotten": "#b00"}.get(report.verdict, "#000")
        self.verdict = widgets.HTML(
            f"<h3 style='color:{colour}'>{html.escape(report.name)}: {html.escape(report.verdict)}</h3>"
            + "<ul>"
            + "".join(f"<li>{html.escape(r)}</li>" for r in report.reasons)
            + "</ul>"
        )
        self.table = widgets.HTML(
            table_html(
                ["check", "model", "retain oracle", "recovered?"],
                [[c.name, f"{c.model:.3f}", f"{c.oracle:.3f}", "yes" if c.recovered else "no"] for c in report.checks],
            )
        )
        self.panel = FigurePanel()
        self.figure.observe(lambda _: self.redraw(), "value")
        super().__init__([self.verdict, self.table, self.figure, self.panel])
        self.redraw()

    def redraw(self) -> None:
        self.panel.show(self.figures[self.figure.value])
