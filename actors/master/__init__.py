"""The master role: takes jobs, plans splits, drives mappers and reducers, assembles results."""
