from datetime import date

from feedback_pipeline.core.retention import expired_days


def test_only_days_older_than_the_retention_window_expire():
    days = ["2026-05-01", "2026-05-10", "2026-05-11", "2026-05-12"]
    assert expired_days(days, date(2026, 5, 12), 1) == ["2026-05-01", "2026-05-10"]
    assert expired_days(days, date(2026, 5, 12), 30) == []
    assert expired_days(days, date(2026, 5, 12), 0) == days[:3]
