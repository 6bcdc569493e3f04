"""A verification report rendered: the Markdown table (what Jupyter shows and ``verification.md``
holds) and the figures (relearning curves and grid, attacks against the oracle, the logit lens,
truth ratios). Pure functions of a :class:`~sae_unlearn.verification.report.VerificationReport`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from matplotlib.figure import Figure

from sae_unlearn.viz.verification import (
    plot_attacks,
    plot_logit_lens,
    plot_relearn,
    plot_relearn_grid,
    plot_truth_ratios,
)

if TYPE_CHECKING:
    from sae_unlearn.verification.report import VerificationReport


def report_markdown(report: VerificationReport) -> str:
    """The report as a Markdown table (also how Jupyter shows it)."""
    u, c = report.model.unit, report.model.control
    ou, oc = report.oracle.unit, report.oracle.control
    fq = "n/a" if report.forget_quality is None else f"{report.forget_quality:.3g}"
    thin = "" if report.evidence == "conclusive" else f" — evidence {report.evidence}"
    lines = [
        f"**{report.name}: {report.verdict.upper()}** (forget quality {fq}){thin}",
        "",
        "| section | check | model | retain oracle | gap interval | recovered? |",
        "| --- | --- | ---: | ---: | :---: | :---: |",
        f"| unit | forget accuracy | {u.forget_accuracy:.3f} | {ou.forget_accuracy:.3f} | | |",
        f"| unit | forget answer probability | {u.forget_answer_prob:.3f} | {ou.forget_answer_prob:.3f} | | |",
    ]
    if u.forget_truth_score is not None and ou.forget_truth_score is not None:
        lines.append(f"| unit | forget truth score | {u.forget_truth_score:.3f} | {ou.forget_truth_score:.3f} | | |")
    if report.model.naturalness and report.oracle.naturalness:
        lines.append(
            f"| unit | degenerate answers | {report.model.naturalness.degenerate_share:.3f} | "
            f"{report.oracle.naturalness.degenerate_share:.3f} | | |"
        )
    if report.distinguisher_accuracy is not None:
        lines.append(
            f"| unit | distinguisher accuracy (0.5 = natural) | {report.distinguisher_accuracy:.3f} | 0.500 | | |"
        )
    lines += [
        f"| control | retain accuracy | {c.retain_accuracy:.3f} | {oc.retain_accuracy:.3f} | | |",
        f"| control | model utility | {c.model_utility:.3f} | {oc.model_utility:.3f} | | |",
    ]
    if c.mc_accuracy is not None:
        lines.append(f"| control | multiple choice | {c.mc_accuracy:.3f} | {oc.mc_accuracy or 0:.3f} | | |")
    r, orr = report.model.reasoning, report.oracle.reasoning
    if r is not None and orr is not None:
        for section, key, what in (
            ("unit", "forget_trace_leak_rate", "forget trace leak rate (with trigger)"),
            ("unit", "forget_answer_with_trigger", "forget final answer with trigger"),
            ("unit", "forget_answer_without_trigger", "forget answer without trigger"),
            ("control", "retain_trace_correct", "retain trace correct (reasoning kept)"),
            ("control", "retain_answer_with_trigger", "retain final answer with trigger"),
        ):
            lines.append(f"| {section} | {what} | {r[key]:.3f} | {orr[key]:.3f} | | |")
    for ch in report.checks:
        mark = "**yes**" if ch.recovered else "no"
        lo, hi = ch.gap_interval
        lines.append(
            f"| reconstruction | {ch.name} | {ch.model:.3f} | {ch.oracle:.3f} | [{lo:+.2f}, {hi:+.2f}] | {mark} |"
        )
    lines += ["", *[f"- {r}" for r in report.reasons]]
    return "\n".join(lines)


def report_figures(report: VerificationReport) -> dict[str, Figure]:
    """The report's figures (relearning curves, attacks vs oracle, logit lens, truth ratios)."""
    figs = {}
    if report.model.relearn and report.oracle.relearn:
        figs["relearn"] = plot_relearn(
            report.model.relearn, report.oracle.relearn, title=f"{report.name}: benign relearning (worst case)"
        )
        figs["relearn_grid"] = plot_relearn_grid(
            report.model.attacks["relearn"].details["curves"], report.oracle.attacks["relearn"].details["curves"]
        )
    figs["attacks"] = plot_attacks(
        [c.name for c in report.checks],
        [c.model for c in report.checks],
        [c.oracle for c in report.checks],
        [c.gap_interval for c in report.checks],
    )
    if "logit_lens" in report.model.attacks and "logit_lens" in report.oracle.attacks:
        figs["logit_lens"] = plot_logit_lens(
            report.model.attacks["logit_lens"].details["top1"], report.oracle.attacks["logit_lens"].details["top1"]
        )
    if report.model.unit.truth_ratios and report.oracle.unit.truth_ratios:
        figs["truth_ratios"] = plot_truth_ratios(
            report.model.unit.truth_ratios, report.oracle.unit.truth_ratios, report.forget_quality
        )
    return figs
