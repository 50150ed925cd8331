"""The owners' report and /status, built from storage only; the modules point one way.

`topics` (what negative reviews mention) ← `data` (what happened: run summaries, weekly history, the
week's counts and owner numbers, the containment trend; no strings); `suggested` (suggested FAQ
entries: the week's staff-handled questions clustered by `shop.suggestions`, kept for the owner's
buttons, added as entries) ← `text` (status text, weekly report text, learning and suggestion lines)
and `chart` (the trend PNG) ← `weekly` (the weekly report: text + chart + data, saved under
paths.reports).
"""
