"""The fault x invariant table of a chaos run (markdown), and the whole-run checks under it.

A checkout is *exposed* to a fault when its life (first request to its last answer, or to its expiry when it was
left to expire) overlaps the fault's window (the kill to a few seconds after the part is back). Each cell says how
many exposed checkouts broke that invariant ("ok" when none); `500` and `503` count the answers received inside
the fault's windows. A checkout can be exposed to several faults.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos.faults import FAULT_KINDS, Fault
from chaos.invariants import CheckoutVerdict, GlobalCheck
from chaos.load import Answer

PER_CHECKOUT = ("settles", "confirm is a sale", "cancel is no sale", "holds agree", "one checkout per key")
# A fault's effects outlast its restart: a worker's checkouts wait for another worker, clients back off.
AFTERMATH_SECONDS = 5.0


@dataclass
class ChaosReport:
    minutes: float
    faults: list[Fault]
    verdicts: list[CheckoutVerdict]
    answers: list[Answer]
    checks: list[GlobalCheck]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (all(not v.broken for v in self.verdicts) and all(c.ok for c in self.checks)
                and not self.count(self.answers, 500))

    @staticmethod
    def count(answers: list[Answer], status: int | None) -> int:
        return sum(1 for a in answers if a.status == status)

    def table(self) -> str:
        head = ["fault", "injected", "checkouts exposed", *PER_CHECKOUT, "500 answers", "503 answers"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        exposed_any: set[int] = set()
        for kind in FAULT_KINDS:
            faults = [f for f in self.faults if f.kind == kind]
            windows = [(f.started, f.recovered + AFTERMATH_SECONDS) for f in faults]
            exposed = [i for i, v in enumerate(self.verdicts) if _overlaps(v, windows)]
            exposed_any.update(exposed)
            answers = [a for a in self.answers if any(start <= a.at <= end for start, end in windows)]
            lines.append(self._row(kind, str(len(faults)), [self.verdicts[i] for i in exposed], answers))
        calm = [v for i, v in enumerate(self.verdicts) if i not in exposed_any]
        lines.append(self._row("none (calm)", "-", calm, []))
        lines.append(self._row("**whole run**", str(len(self.faults)), self.verdicts, self.answers))
        return "\n".join(lines)

    def _row(self, name: str, injected: str, verdicts: list[CheckoutVerdict], answers: list[Answer]) -> str:
        cells = [name, injected, str(len(verdicts))]
        for invariant in PER_CHECKOUT:
            broken = sum(1 for v in verdicts if invariant in v.broken)
            cells.append("ok" if not broken else f"**{broken} broken**")
        fives = self.count(answers, 500)
        cells.append("0" if not fives else f"**{fives}**")
        cells.append(str(self.count(answers, 503)) if answers else "-")
        return "| " + " | ".join(cells) + " |"

    def checks_table(self) -> str:
        lines = ["| whole-run check | result | detail |", "|---|---|---|"]
        lines += [f"| {c.name} | {'ok' if c.ok else '**FAILED**'} | {c.detail} |" for c in self.checks]
        return "\n".join(lines)

    def summary(self) -> str:
        created = [v.record for v in self.verdicts if v.record.created]
        finals: dict[str, int] = {}
        for record in created:
            finals[record.final_status or "unknown"] = finals.get(record.final_status or "unknown", 0) + 1
        refused: dict[str, int] = {}
        for verdict in self.verdicts:
            record = verdict.record
            if record.post_status is not None and 400 <= record.post_status < 500:
                kind = f"{record.post_status} {record.post_problem or '?'}"
                refused[kind] = refused.get(kind, 0) + 1
        parts = [
            f"{len(self.verdicts)} checkouts sent, {len(created)} answered 201 ("
            + ", ".join(f"{n} ended {status}" for status, n in sorted(finals.items())) + "), refused: "
            + (", ".join(f"{n} x {kind}" for kind, n in sorted(refused.items())) or "none"),
            f"answers received: {len(self.answers)}, of which {self.count(self.answers, 500)} x 500, "
            f"{self.count(self.answers, 503)} x 503, {self.count(self.answers, None)} transport errors",
            f"{len(self.faults)} faults: " + ", ".join(
                f"{f.kind} {f.target} (back in {f.recovered - f.started:.1f}s{'; ' + f.error if f.error else ''})"
                for f in self.faults),
        ]
        return "\n".join(f"- {p}" for p in [*parts, *self.notes])

    def broken_examples(self, limit: int = 10) -> list[str]:
        found = [f"{name}: {why}" for v in self.verdicts for name, why in v.broken.items()]
        fives = [f"500 on {a.method} {a.path}: {a.body[:200]}" for a in self.answers if a.status == 500]
        return (found + fives)[:limit]

    def render(self) -> str:
        text = [f"Chaos run: {self.minutes:g} min of load, {len(self.faults)} faults.", "", self.table(), "",
                self.checks_table(), "", self.summary()]
        examples = self.broken_examples()
        if examples:
            text += ["", "What broke (first ones):", *(f"- {e}" for e in examples)]
        return "\n".join(text)


def _overlaps(verdict: CheckoutVerdict, windows: list[tuple[float, float]]) -> bool:
    record = verdict.record
    end = max(record.ended_at, record.started_at)
    return any(record.started_at <= w_end and start <= end for start, w_end in windows)
