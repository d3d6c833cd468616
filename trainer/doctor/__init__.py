"""The dataset doctor (`python -m trainer doctor`): what the model will actually learn from a
run's dataset. ``report`` runs it; ``marks`` holds the token ids and trained/masked marks made the
way TRL makes them; ``findings`` and ``near_dup`` judge the rows; ``lengths`` the histogram."""

from trainer.doctor.findings import Finding
from trainer.doctor.report import DoctorReport, run_doctor

__all__ = ["DoctorReport", "Finding", "run_doctor"]
