"""The Textual front end of w2s: `w2s tui [RESULTS_DIR]`. Uses only w2s_core's public modules."""
