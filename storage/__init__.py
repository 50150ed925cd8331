"""All SQL of shopbot: the SQLite database, its migrations and one repository per table (sqlite-utils)."""
