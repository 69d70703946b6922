"""One module per check (or family of checks); each check takes a Setup and returns a CheckResult."""
