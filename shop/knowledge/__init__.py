"""The shop's own knowledge: its FAQ and labelled reviews as a spreadsheet, in (`shopbot import`: importing.py,
checks.py) and out (`shopbot export --kind faq|reviews|shop`: exporting.py) in one column layout (layout.py),
and editing the FAQ entry by entry (editing.py: the use cases behind /faq)."""
