"""Generated code (`make proto`); never edited by hand."""
