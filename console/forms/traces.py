"""The forms of traces: the retention setting. They check types; services decide."""

from __future__ import annotations

from django import forms

from traces import services


class RetentionForm(forms.Form):
    retention_days = forms.IntegerField(min_value=1, max_value=services.MAX_RETENTION_DAYS, label="Keep spans (days)")
