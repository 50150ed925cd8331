"""The owners' report and /status, built from storage only; the modules point one way.

`data` (what happened: run summaries, weekly history, the week's counts; no strings) ←
`text` (status text, weekly report text, learning lines) and `chart` (the trend PNG) ←
`weekly` (the weekly report: text + chart + data, saved under paths.reports).
"""
