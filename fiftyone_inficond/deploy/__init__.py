"""Deployable students: a tuned run exported with its concept extractor, applied anywhere."""
