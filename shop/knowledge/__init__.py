"""The shop's own knowledge as a spreadsheet: FAQ entries and labelled reviews in (`shopbot import`) and out
(`shopbot export --kind faq|reviews|shop`), as .xlsx, .csv or .jsonl in one column layout (layout.py)."""
