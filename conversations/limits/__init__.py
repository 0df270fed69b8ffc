"""Admission control for turns: token budgets, rate limits and the LLM queue (DESIGN.md §1, step 1)."""
