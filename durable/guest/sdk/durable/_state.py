"""Per-run guest state, reset at the start of every run."""

#: True while the body of a recorded step runs (nested steps then run as plain code).
from __future__ import annotations

in_step = False
#: Which attempt of a retried step is running (1 for steps without a retry policy).
step_attempt = 1
#: Recorded steps handed out by `step.enter-ahead` and not replayed yet, each as
#: (label, digest or "", payload), the next one last (`_steps._enter`).
ahead: list[tuple[str, str, str]] = []
